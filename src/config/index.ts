export { ConfigError, type ConfigProblem } from './errors.js';
export { loadConfigFile, parseConfig } from './load.js';
export type { AccountConfig, ConsoleConfig, HttpConfig, LimitsConfig, ListenConfig, MailLogConfig, Microsoft365Config, RelayConfig, RetryConfig, RouteConfig, UserConfig } from './schema.js';
export { DEFAULT_ACCOUNT } from './schema.js';
export { accountsOf } from './accounts.js';
export { CLOUDS, CLOUD_NAMES, type CloudName, type CloudPreset } from './clouds.js';
export { formatDuration, parseDuration, parseSize } from './duration.js';
