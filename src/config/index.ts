export { ConfigError, type ConfigProblem } from './errors.js';
export { loadConfigFile, parseConfig } from './load.js';
export type { LimitsConfig, ListenConfig, Microsoft365Config, RelayConfig, RetryConfig, UserConfig } from './schema.js';
export { formatDuration, parseDuration, parseSize } from './duration.js';
