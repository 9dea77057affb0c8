// .env.example must list every variable the config reads, and nothing it does not.
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../jobs/config.ts';

const example = parseEnv(readFileSync(new URL('../.env.example', import.meta.url), 'utf8'));
const configSource = readFileSync(new URL('../jobs/config.ts', import.meta.url), 'utf8');
const schemaKeys = [...configSource.matchAll(/^\s{4}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);

describe('.env.example', () => {
  it('documents exactly the variables the config schema reads', () => {
    expect(Object.keys(example).sort()).toEqual([...new Set(schemaKeys)].sort());
  });

  it('parses as a valid sandbox configuration', () => {
    expect(parseConfig(example as Record<string, string>).mode).toBe('sandbox');
  });
});
