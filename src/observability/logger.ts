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
}

export function loggerOptions(config: Pick<ServerConfig, 'logLevel' | 'logPrompts'>): LoggerSettings {
  const secrets = ['req.headers.authorization', 'headers.authorization', 'authorization'];
  const prompts = config.logPrompts ? [] : ['prompt', 'messages', '*.prompt', '*.messages'];
  return { level: config.logLevel, redact: { paths: [...secrets, ...prompts], censor: REDACTED } };
}
