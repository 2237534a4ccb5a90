# syntax=docker/dockerfile:1
# m365-relay container image. Install: README, "Install with Docker".
#   build      compiles TypeScript (needs the dev dependencies)
#   prod-deps  production dependencies only
#   runtime    dist/ + production node_modules, unprivileged user, spool on a volume
#
#   docker build -t m365-relay .
#   docker run -d --name m365-relay --restart unless-stopped --stop-timeout 45 -p 25:2525 \
#     -v m365-relay-data:/var/lib/m365-relay -v /etc/m365-relay:/etc/m365-relay:ro \
#     --env-file /etc/m365-relay/m365-relay.env m365-relay
# Host port 25 maps to 2525 in the container, so the process needs no privilege.
# Layout (the same as the systemd unit's): config /etc/m365-relay/relay.yaml, spool
# /var/lib/m365-relay/spool, health endpoint 127.0.0.1:9465 (config/relay.example.yaml has both).
# test/packaging.test.ts parses this file and runs the HEALTHCHECK script against a real relay.
# Node.js 24 (the current LTS; Node 20 reached end of life on 30 April 2026 but is still supported
# to run the relay, see package.json engines). CI runs the suite on Node 24 too.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Only tsc runs here: no install script (better-sqlite3's native build happens in prod-deps).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install script runs: on Node 24 the mail log uses Node's own node:sqlite (src/maillog/sqlite.ts),
# so better-sqlite3's native build (for Node 20 hosts) is neither needed nor loaded here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
# M365_RELAY_HEALTH_URL: where the HEALTHCHECK asks; change it with the config's http section.
# MALLOC_ARENA_MAX and the ENTRYPOINT's --max-semi-space-size: the runtime tuning of dist/cli.js's first line.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    M365_RELAY_HEALTH_URL=http://127.0.0.1:9465/healthz
WORKDIR /app
# A fixed uid/gid (10025), so that a bind-mounted spool or config can be given to it on the host.
RUN groupadd --system --gid 10025 m365-relay \
 && useradd --system --uid 10025 --gid m365-relay --home-dir /var/lib/m365-relay --shell /usr/sbin/nologin m365-relay \
 && install -d -o m365-relay -g m365-relay -m 0700 /var/lib/m365-relay \
 && install -d -m 0755 /etc/m365-relay
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json says "type": "module", which dist/ needs.
COPY package.json ./
COPY config/relay.example.yaml ./config/relay.example.yaml
USER m365-relay
VOLUME ["/var/lib/m365-relay"]
EXPOSE 2525
# Alive = the relay's /healthz answers 200 (the image has no curl; node does the request).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const r=require('http').get(process.env.M365_RELAY_HEALTH_URL||'http://127.0.0.1:9465/healthz',{timeout:4000},(s)=>{s.resume();process.exit(s.statusCode===200?0:1)});r.on('timeout',()=>{r.destroy();process.exit(1)});r.on('error',()=>process.exit(1))"]
# `docker stop` sends SIGTERM; give it --stop-timeout 45 (the default 10 s is shorter than the
# relay's 30 s of grace for transactions and deliveries under way).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/cli.js"]
CMD ["run", "--config", "/etc/m365-relay/relay.yaml"]
