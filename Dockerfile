# attune: one model per container; scale with replicas (see ARCHITECTURE.md, "Scale-out").
# Build:  docker build -t attune .
# Run:    docker run -p 8000:8000 -v /path/to/models:/models attune --model stories260K
FROM node:20-bookworm-slim AS build
WORKDIR /app
# .npmrc skips onnxruntime-node's CUDA download; the CPU binaries ship in the package.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
COPY calibrators ./calibrators
COPY models ./models
COPY load-tests ./load-tests
COPY test ./test
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
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
USER node
EXPOSE 8000
# The readiness probe runs a one-token forward; point Kubernetes readinessProbe at /ready and
# livenessProbe at /health.
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/cli/main.js", "serve"]
