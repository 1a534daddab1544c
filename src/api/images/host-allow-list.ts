/**
 * The operator's list of hosts images may be fetched from: exact names or IP literals, and
 * `*.example.com` for any name under a domain (not the domain itself). Both sides are compared in
 * the form the WHATWG URL parser gives a hostname (lower case, punycode, IPv4 in dotted decimal,
 * IPv6 compressed), so `http://2130706433/` cannot dodge an entry for 127.0.0.1 or the other way
 * round, and a trailing dot does not make a different host.
 */
import { isIP } from 'node:net';

export interface HostPattern {
  host: string;
  /** `*.host`: matches names below `host`, never `host` itself. */
  wildcard: boolean;
}

/** How a host matched; `exact` matters because only exact entries may reach private addresses. */
export type HostMatch = 'exact' | 'wildcard' | null;

/** A pattern as written in config, or null when it is not a bare hostname (scheme, port, path…). */
export function parseHostPattern(text: string): HostPattern | null {
  const trimmed = text.trim();
  const wildcard = trimmed.startsWith('*.');
  const raw = wildcard ? trimmed.slice(2) : trimmed;
  const bare = raw.replace(/^\[(.*)\]$/, '$1');
  if (bare === '' || /[/\\@?#\s*[\]]/.test(bare)) return null;
  // A port would be dropped silently by the URL parser when it is the default one; refuse it instead.
  if (bare.includes(':') && isIP(bare) !== 6) return null;
  const host = canonicalHost(isIP(bare) === 6 ? `[${bare}]` : bare);
  if (host === null || (wildcard && isIP(host) !== 0)) return null;
  return { host, wildcard };
}

/** The host of a URL as the allow-list and the resolver see it: no brackets, no trailing dot. */
export function urlHost(url: URL): string {
  return normalize(url.hostname);
}

export class HostAllowList {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const text of patterns) {
      const p = parseHostPattern(text);
      if (!p) throw new Error(`not a host pattern: '${text}'`);
      if (p.wildcard) this.suffixes.push(`.${p.host}`);
      else this.exact.add(p.host);
    }
  }

  match(host: string): HostMatch {
    if (this.exact.has(host)) return 'exact';
    // An IP literal is never "under" a domain, whatever its text ends with.
    if (isIP(host) === 0 && this.suffixes.some((s) => host.endsWith(s))) return 'wildcard';
    return null;
  }
}

function canonicalHost(text: string): string | null {
  let url: URL;
  try {
    url = new URL(`http://${text}/`);
  } catch {
    return null;
  }
  if (url.host !== url.hostname || url.username || url.password || url.pathname !== '/' || url.search || url.hash) return null;
  const host = normalize(url.hostname);
  return host === '' ? null : host;
}

function normalize(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}
