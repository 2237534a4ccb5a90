export { SpoolWriteError } from './errors.js';
export type { IncomingMessage, MessageSink } from './incoming.js';
export { Spool, type RecoveryReport, type SpoolEntry } from './spool.js';
export type { ClientInfo, CommitInput, Envelope, MessageMeta, MessageRoute, RecipientState, SpoolState } from './types.js';
export { QueueAdmin, QueueCommandError, takeAdminActions, wakeDaemon, watchWakeups, type AdminAction } from './admin.js';
export type { StateDir } from './spool.js';
export { SpaceGuard } from './space.js';
export { acquireSpoolLock, inspectSpoolLock, SpoolLock, SpoolLockedError, type LockOwner } from './lock.js';
export { checkSpoolOwner, SpoolOwnerError } from './owner.js';
