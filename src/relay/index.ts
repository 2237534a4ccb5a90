export { RelayWorker, type WorkerOptions } from './worker.js';
export { classify, describeFailure, type Classification, type FailureClass, type UpstreamFailure } from './classify.js';
