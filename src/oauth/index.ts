export { TokenError, toTokenError, type TokenFailureKind } from './errors.js';
export { TokenProvider, loadClientCertificate, type AccessToken, type TokenSource } from './tokenProvider.js';
export { DelegatedTokenProvider, type DelegatedHealth, type DelegatedTokenOptions } from './delegated.js';
export { LoginError, runDeviceCodeLogin, type DeviceCodeLoginOptions, type LoginFailure, type LoginResult } from './login.js';
export { loginCommandLine, type DelegatedAccountSettings, type LoginCommandTarget } from './publicClient.js';
export { TokenCacheError, TokenCacheFile, parseCacheKey, type CacheKey, type SigninRecord, type TokenCacheProblem } from './tokenCache.js';
