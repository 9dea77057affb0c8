// How an email address enters the system: trimmed, lower-cased (users.email is unique and checked
// lower-case), at most 254 characters (RFC 5321's limit for a path).
import { z } from 'zod';

export const emailSchema = z.string().trim().max(254).toLowerCase().pipe(z.email('must be an email address'));
