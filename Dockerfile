# attune: one model per container; scale with replicas (deploy/k8s/, docs/deploy.md).
# Build:  docker build -t attune:0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
# Run:    docker run -p 8000:8000 -v /path/to/models:/models attune:0.1.0 --model stories260K
#
# The base is pinned by digest: the multi-arch index of node:20-bookworm-slim as published for
# Node 20.20.2 (amd64 image built 2026-04-22), from the official images' record in
# docker-library/repo-info (repos/node/remote/20-bookworm-slim.md). Renew both stages together.
ARG NODE_IMAGE=node:20-bookworm-slim@sha256:25070a03f077f5860e4f2db8d147380678ed40ead415a21eaffd5a6208f61948

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# .npmrc turns dependency install scripts off (onnxruntime-node's would download CUDA binaries;
# the CPU binaries ship in the package).
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
# Only what runs: tsconfig.build.json compiles src, plugins, calibrators and models, never test/ or
# load-tests/ (test/deploy/dockerfile.test.ts checks that the server's import graph stays inside these).
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY calibrators ./calibrators
COPY models ./models
RUN npm run build:runtime && npm prune --omit=dev

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="attune" \
      org.opencontainers.image.description="OpenAI-compatible inference server with training-free attention calibrators applied inside the forward pass" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/node:20-bookworm-slim" \
      org.opencontainers.image.base.digest="sha256:25070a03f077f5860e4f2db8d147380678ed40ead415a21eaffd5a6208f61948"
WORKDIR /app
# MALLOC_MMAP_THRESHOLD_: glibc otherwise raises its mmap threshold as large blocks are freed and then
# keeps freed temporaries (onnxruntime session creation) in its heap: tens of MB per graph opened.
ENV NODE_ENV=production \
    ATTUNE_MODELS_DIR=/models \
    ATTUNE_CACHE_DIR=/cache \
    ATTUNE_COMPILED_CACHE=/cache/compiled \
    MALLOC_MMAP_THRESHOLD_=131072 \
    HOST=0.0.0.0 \
    PORT=8000
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/models/profiles ./models/profiles
COPY --from=build /app/package.json ./package.json
RUN mkdir -p /models /cache && chown -R node:node /cache
# uid 1000; the Kubernetes manifests run it with a read-only root filesystem (writable: /cache, /tmp).
USER node
EXPOSE 8000
# Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s (startup and liveness on /health,
# readiness on /ready, which runs a one-token forward).
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Arguments go to `attune serve`; other commands (e.g. `attune fetch` in an init container) set the
# command: node dist/src/cli/main.js fetch ...
ENTRYPOINT ["node", "dist/src/cli/main.js", "serve"]
