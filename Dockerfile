# syntax=docker/dockerfile:1
# m365-relay: multi-stage build; the runtime image has production dependencies only and runs as
# an unprivileged user. The spool is a volume: mount it on persistent storage.
#   docker build -t m365-relay .
#   docker run -d --name m365-relay -p 25:2525 -v m365-relay-spool:/var/spool/m365-relay \
#     -v /etc/m365-relay:/etc/m365-relay:ro -e M365_CLIENT_SECRET=... m365-relay
# (port 25 on the host maps to 2525 in the container, so the process needs no privilege)

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system m365relay && useradd --system --gid m365relay --home-dir /nonexistent --shell /usr/sbin/nologin m365relay \
 && mkdir -p /var/spool/m365-relay /etc/m365-relay && chown m365relay:m365relay /var/spool/m365-relay
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config/relay.example.yaml /etc/m365-relay/relay.example.yaml
USER m365relay
VOLUME ["/var/spool/m365-relay"]
EXPOSE 2525
# Alive = the listener answers with an SMTP greeting.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const s=require('net').connect(2525,'127.0.0.1');s.setTimeout(4000);s.once('data',d=>process.exit(String(d).startsWith('220')?0:1));s.once('error',()=>process.exit(1));s.once('timeout',()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run", "--config", "/etc/m365-relay/relay.yaml"]
