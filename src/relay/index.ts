export { RelayWorker, accountOf, type WorkerOptions } from './worker.js';
export type { ReconfigurePlan } from './laneSet.js';
export { AccountSetupError, createTokenSource, createTransport, defaultAccountFactory, makeAccountFactory, tokenScope, delegatedSettings, type AccountFactory, type AccountTokenSource, type FactoryContext, type MessageTransport, type SendContext } from './accountFactory.js';
export type { LaneHealth, UpstreamHealth } from './lane.js';
export { classify, describeFailure, type Classification, type FailureClass, type UpstreamFailure } from './classify.js';
