/**
 * Logger settings. Prompts and messages are redacted unless log_prompts is on: they are user data,
 * often personal, and logs travel further than responses. The Authorization header is always
 * redacted, wherever it appears.
 */
import type { ServerConfig } from '../config/schema.js';

export const REDACTED = '[redacted]';

export interface LoggerSettings {
  level: string;
  redact: { paths: string[]; censor: string };
  serializers: { req: (req: LoggedRequest) => Record<string, unknown> };
}

/** What Fastify hands the `req` serializer (its request object). */
export interface LoggedRequest {
  method: string;
  url: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/**
 * A URL as logged: every query value redacted, since clients put keys there (`?api_key=…`) and
 * nothing in attune reads the query string.
 */
export function redactQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? p : `${p.slice(0, eq)}=${REDACTED}`;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

export function loggerOptions(config: Pick<ServerConfig, 'logLevel' | 'logPrompts'>): LoggerSettings {
  const secrets = ['req.headers.authorization', 'headers.authorization', 'authorization'];
  const prompts = config.logPrompts ? [] : ['prompt', 'messages', '*.prompt', '*.messages'];
  return {
    level: config.logLevel,
    redact: { paths: [...secrets, ...prompts], censor: REDACTED },
    serializers: {
      req: (req) => ({ method: req.method, url: redactQuery(req.url), remoteAddress: req.ip, remotePort: req.socket?.remotePort }),
    },
  };
}
