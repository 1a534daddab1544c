/**
 * Connections: how many are served at once, and how long one may sit without a request.
 *
 * Past `maxConnections` a connection is still accepted, but every request on it is answered 503 and
 * the connection closed, except the health probes (a load balancer must still see the process
 * alive). Past `maxConnections + reserve` connections are dropped at accept, so that many held
 * sockets can never exhaust the process's file descriptors (about 20,000 held connections once
 * did, and /health was reset).
 *
 * Idle sockets use Node's own timers: `headersTimeout` for a connection that has not finished its
 * first request's headers (one that sends nothing at all included), `keepAliveTimeout` between
 * requests. Node checks `headersTimeout` on an interval, which is set at server creation (see
 * `serverTimerOptions`), so the deadline holds to within a second.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Why the server closed or refused a connection (the `reason` of attune:http_connections_closed_total). */
export const CONNECTION_CLOSE_REASONS = [
  'max_connections',
  'dropped',
  'idle_timeout',
  'headers_timeout',
  'body_timeout',
  'body_memory',
  'write_timeout',
  'bad_request',
] as const;
export type ConnectionCloseReason = (typeof CONNECTION_CLOSE_REASONS)[number];

export interface ConnectionLimits {
  maxConnections: number;
  idleTimeoutMs: number;
}

/** Connections beyond the cap that are still accepted, to be answered 503 (or a health probe). */
export function connectionReserve(maxConnections: number): number {
  return Math.max(16, Math.ceil(maxConnections / 8));
}

/** Options Node reads only when the server is created. */
export function serverTimerOptions(idleTimeoutMs: number): { connectionsCheckingInterval: number; keepAliveTimeout: number } {
  return { connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(idleTimeoutMs / 4))), keepAliveTimeout: idleTimeoutMs };
}

export class ConnectionGuard {
  private openCount = 0;
  private readonly overCap = new WeakSet<Socket>();

  constructor(
    server: Server,
    private readonly limits: ConnectionLimits,
    secure: boolean,
    onClosed: (reason: ConnectionCloseReason) => void,
  ) {
    server.maxConnections = limits.maxConnections + connectionReserve(limits.maxConnections);
    server.headersTimeout = limits.idleTimeoutMs;
    server.keepAliveTimeout = limits.idleTimeoutMs;
    server.on('drop', () => onClosed('dropped'));
    server.on('connection', (socket: Socket) => {
      this.openCount++;
      socket.once('close', () => this.openCount--);
      if (!secure) this.mark(socket);
    });
    // Over TLS, requests arrive on the TLS socket, not the TCP one 'connection' reports.
    if (secure) server.on('secureConnection', (socket: Socket) => this.mark(socket));
    // Node emits 'timeout' for an idle keep-alive socket; with a listener it leaves closing to us.
    server.on('timeout', (socket: Socket) => {
      onClosed('idle_timeout');
      socket.destroy();
    });
  }

  get open(): number {
    return this.openCount;
  }

  /** Whether requests on this connection are refused: it arrived while the server was at its cap. */
  isOverCap(socket: Socket | undefined): boolean {
    return socket !== undefined && this.overCap.has(socket);
  }

  private mark(socket: Socket): void {
    if (this.openCount > this.limits.maxConnections) this.overCap.add(socket);
  }
}
