import { Agent, type AgentOptions } from 'node:https';
import { TunnelingAgent } from './agent.js';
import { proxyFor } from './settings.js';

export { TunnelingAgent } from './agent.js';
export { DIRECT, noProxyMatches, parseProxyUrl, proxyFor, proxyNote, ProxyUrlError, redactProxyUrl, type ProxyChoice } from './settings.js';
export { openTunnel, ProxyError, type ProxyFailureKind } from './tunnel.js';

/**
 * The https.Agent for requests to `host` from an account with this `proxy` setting: a tunnelling
 * one when a proxy applies (configuration or environment), else a plain one. `env` is read now.
 */
export function httpsAgentFor(setting: string | undefined, host: string, connectTimeoutMs: number, options: AgentOptions = {}, env: NodeJS.ProcessEnv = process.env): Agent {
  const choice = proxyFor(setting, host, env);
  return choice ? new TunnelingAgent(choice.url, connectTimeoutMs, options) : new Agent(options);
}
