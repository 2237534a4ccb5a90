// What a delegated (device-code) account needs, and msal-node's PublicClientApplication for it.
import { LogLevel, PublicClientApplication, type ICachePlugin, type INetworkModule } from '@azure/msal-node';
import type { Logger } from '../observability/logger.js';
import { httpsAgentFor } from '../proxy/index.js';
import { MsalNetworkClient } from './networkClient.js';

/** One mailbox that signs in as its user (device-code flow) instead of with app-only tokens. */
export interface DelegatedAccountSettings {
  tenantId: string;
  /** The app registration; it must allow public client flows. */
  clientId: string;
  /** e.g. 'https://login.microsoftonline.com' */
  authorityHost: string;
  /** The mailbox the user signs in as; also the XOAUTH2 user. */
  mailbox: string;
  /** e.g. ['https://outlook.office.com/SMTP.Send']; msal adds openid, profile and offline_access. */
  scopes: string[];
  /** Where msal's token cache (the refresh token) is kept, mode 0600. */
  cacheFile: string;
  /** Key or passphrase (from the environment) that encrypts the cache file; absent = not encrypted. */
  cacheKey?: string;
  /** The account's `proxy` setting (a URL or `direct`); absent: the environment's. */
  proxy?: string;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** msal's HTTP client for this account's token endpoint: through the proxy when one applies. */
export function msalNetworkClient(settings: { authorityHost: string; proxy?: string }, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): MsalNetworkClient {
  return new MsalNetworkClient(timeoutMs, httpsAgentFor(settings.proxy, new URL(settings.authorityHost).hostname, timeoutMs, { keepAlive: true }));
}

/** Names the administrator's command in advice: the configuration file and the account's name. */
export interface LoginCommandTarget {
  configFile?: string;
  accountName?: string;
}

/** `m365-relay login --config FILE --account NAME`, with the real file and name when known. */
export function loginCommandLine(target: LoginCommandTarget): string {
  return `m365-relay login --config ${target.configFile ?? 'FILE'} --account ${target.accountName ?? 'NAME'}`;
}

export function createPublicClient(
  settings: DelegatedAccountSettings,
  options: { logger?: Logger; cachePlugin?: ICachePlugin; networkClient?: INetworkModule; requestTimeout?: number } = {},
): PublicClientApplication {
  const logger = options.logger;
  return new PublicClientApplication({
    auth: {
      clientId: settings.clientId,
      authority: `${settings.authorityHost}/${settings.tenantId}`,
      // As for app-only tokens: skips instance discovery, so sovereign clouds and the simulator work.
      knownAuthorities: [new URL(settings.authorityHost).host],
    },
    ...(options.cachePlugin && { cache: { cachePlugin: options.cachePlugin } }),
    system: {
      networkClient: options.networkClient ?? msalNetworkClient(settings, options.requestTimeout),
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          if (!logger) return;
          if (level <= LogLevel.Error) logger.warn({ event: 'msal' }, message);
          else logger.debug({ event: 'msal' }, message);
        },
      },
    },
  });
}
