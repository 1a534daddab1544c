/** Per-route flags the cross-cutting plugins read (route `config`), typed for every route. */
declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
    /** A health probe: answered even on a connection over the connection cap. */
    probe?: boolean;
    /** A generation route: admission applies, and failures count in request_failure_total. */
    generation?: boolean;
  }
}

export {};
