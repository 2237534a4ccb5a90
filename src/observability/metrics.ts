import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Where the scrape-time gauges come from; set by the daemon once the parts exist. */
export interface MetricSources {
  /** Messages per spool state, and the arrival time (ms) of the oldest waiting one. */
  queue(): Promise<{ counts: Record<string, number>; oldestReceivedAt: number | null }>;
  /** Open SMTP connections per listener ("host:port"). */
  connections(): Record<string, number>;
  /** Delegated (device-code) accounts: when each sign-in lapses unless renewed (ISO time), null once lost or unknown. */
  signins?(): Record<string, string | null>;
  /** Client secrets and certificates whose expiry is known (ISO times). */
  credentials?(): Array<{ account: string; kind: string; expiresAt: string }>;
}

/**
 * Prometheus metrics for the relay. Counters are driven by the same structured events the relay
 * logs (see observe()), so the log and the metrics always tell the same story.
 */
export class RelayMetrics {
  readonly registry = new Registry();
  private sources: MetricSources | null = null;

  private readonly received = new Counter({ name: 'm365relay_messages_received_total', help: 'Messages accepted from devices (answered 250)', registers: [this.registry] });
  private readonly delivered = new Counter({ name: 'm365relay_messages_delivered_total', help: 'Messages delivered to Exchange Online', registers: [this.registry] });
  private readonly deferred = new Counter({ name: 'm365relay_messages_deferred_total', help: 'Delivery attempts deferred, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly failed = new Counter({ name: 'm365relay_messages_failed_total', help: 'Messages failed for good, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly rejected = new Counter({ name: 'm365relay_smtp_rejected_total', help: 'Client transactions refused by the listener, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly tokens = new Counter({ name: 'm365relay_token_requests_total', help: 'Access token requests to Entra ID, by result', labelNames: ['result'], registers: [this.registry] });
  private readonly replies = new Counter({ name: 'm365relay_upstream_replies_total', help: 'Final replies from Exchange Online, by SMTP code ("none" for network errors)', labelNames: ['code'], registers: [this.registry] });
  private readonly notices = new Counter({ name: 'm365relay_failure_notices_total', help: 'Failure notices (RFC 3464), by outcome: queued, skipped, error', labelNames: ['outcome'], registers: [this.registry] });
  /** Per account (a new series, so the unlabelled totals above keep their meaning for existing dashboards). */
  private readonly accountOutcomes = new Counter({
    name: 'm365relay_account_messages_total',
    help: 'Delivery outcomes per Microsoft 365 account: delivered, deferred (attempts) or failed (messages)',
    labelNames: ['account', 'outcome'],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'm365relay_delivery_latency_seconds',
    help: 'Time from acceptance to delivery',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'm365relay_' });
    const self = this;
    new Gauge({
      name: 'm365relay_queue_messages',
      help: 'Messages in the spool, by state',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        if (!self.sources) return;
        const { counts } = await self.sources.queue();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'm365relay_queue_oldest_message_age_seconds',
      help: 'Age of the oldest message waiting for delivery (0 when none waits)',
      registers: [this.registry],
      async collect() {
        if (!self.sources) return;
        const { oldestReceivedAt } = await self.sources.queue();
        this.set(oldestReceivedAt === null ? 0 : Math.max(0, (Date.now() - oldestReceivedAt) / 1000));
      },
    });
    new Gauge({
      name: 'm365relay_smtp_connections',
      help: 'Open SMTP connections from devices, by listener',
      labelNames: ['listener'],
      registers: [this.registry],
      collect() {
        if (!self.sources) return;
        this.reset();
        for (const [listener, n] of Object.entries(self.sources.connections())) this.set({ listener }, n);
      },
    });
  }

  private readonly signinGauge = new Gauge({
    name: 'm365relay_signin_expires_in_seconds',
    help: 'Delegated sign-ins: seconds until the sign-in lapses unless renewed (0 when lost: run m365-relay login)',
    labelNames: ['account'],
    registers: [this.registry],
    collect: () => {
      const signins = this.sources?.signins?.() ?? {};
      this.signinGauge.reset();
      for (const [account, at] of Object.entries(signins)) this.signinGauge.set({ account }, at ? Math.max(0, (Date.parse(at) - Date.now()) / 1000) : 0);
    },
  });

  private readonly credentialGauge = new Gauge({
    name: 'm365relay_credential_expires_in_seconds',
    help: 'Client secrets (clientSecretExpires) and certificates (notAfter): seconds until each expires (negative once expired)',
    labelNames: ['account', 'kind'],
    registers: [this.registry],
    collect: () => {
      this.credentialGauge.reset();
      for (const c of this.sources?.credentials?.() ?? []) this.credentialGauge.set({ account: c.account, kind: c.kind }, Math.round((Date.parse(c.expiresAt) - Date.now()) / 1000));
    },
  });

  setSources(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Counts one structured log event (the object passed to the logger). */
  observe(event: Record<string, unknown>): void {
    if (typeof event.account === 'string' && (event.event === 'delivered' || event.event === 'deferred' || event.event === 'failed')) {
      this.accountOutcomes.inc({ account: event.account, outcome: event.event });
    }
    switch (event.event) {
      case 'received':
        this.received.inc();
        break;
      case 'delivered':
        this.delivered.inc();
        this.replies.inc({ code: replyCode(event.upstreamReply) });
        if (typeof event.latencySeconds === 'number') this.latency.observe(event.latencySeconds);
        break;
      case 'deferred':
        this.deferred.inc({ reason: String(event.class ?? 'unknown') });
        this.replies.inc({ code: replyCode(event.reason) });
        break;
      case 'failed':
        this.failed.inc({ reason: String(event.class ?? 'unknown') });
        break;
      case 'rejected':
      case 'disk-full':
      case 'auth-failed':
      case 'connection-refused':
        this.rejected.inc({ reason: event.event === 'rejected' ? String(event.reason ?? 'unknown') : event.event });
        break;
      case 'notice-queued':
      case 'notice-skipped':
      case 'notice-failed':
        this.notices.inc({ outcome: event.event === 'notice-queued' ? 'queued' : event.event === 'notice-skipped' ? 'skipped' : 'error' });
        break;
      case 'token':
        this.tokens.inc({ result: 'success' });
        break;
      case 'token-failed':
        this.tokens.inc({ result: String(event.kind ?? 'failure') });
        break;
    }
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** "451 4.7.500 Server busy" -> "451"; anything without a leading code (network errors) -> "none". */
function replyCode(text: unknown): string {
  const match = /^([2-5]\d\d)\b/.exec(String(text ?? ''));
  return match?.[1] ?? 'none';
}
