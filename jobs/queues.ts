// Queue names. The seed's Bull queue `tatum` with job `create-virtual-account` becomes the pg-boss
// queue `tatum.create-virtual-account`, so both names stay visible in SQL and dashboards; every
// queue of the `tatum` group starts with `tatum.`.
export const QUEUE_GROUP = 'tatum';

export const QUEUES = {
  provision: 'tatum.create-virtual-account',
  provisionDead: 'tatum.create-virtual-account.dead',
  depositReceived: 'tatum.deposit-received',
  reconcile: 'tatum.reconcile',
  emailSend: 'email.send',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface ProvisionJob {
  userId: string;
}
