# The router image compose.yaml builds: the source, run by the Bun version the
# tests use, with production dependencies exactly as locked.
FROM oven/bun:1.4.5
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production
COPY src ./src
# A fresh named volume copies this folder's owner, so the store is writable.
RUN mkdir -p /var/lib/router && chown bun:bun /var/lib/router
USER bun
EXPOSE 8080
# The config comes from ROUTER_CONFIG (compose.yaml sets it).
CMD ["bun", "run", "src/main.ts"]
