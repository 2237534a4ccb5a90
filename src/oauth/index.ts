export { TokenError, toTokenError, type TokenFailureKind } from './errors.js';
export { TokenProvider, loadClientCertificate, type AccessToken, type TokenSource } from './tokenProvider.js';
