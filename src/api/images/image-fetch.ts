/**
 * Fetching an `image_url` over http(s), for servers whose operator turned it on. Each hop of a fetch
 * (the URL, then every redirect, followed by hand so none is taken blindly) must name an allow-listed
 * host whose addresses are all fetchable (address-policy.ts); the connection then goes to one of
 * exactly those addresses, never to a second resolution of the name, so DNS that answers differently
 * between the check and the connect (rebinding) cannot move it. The byte cap is enforced from the
 * Content-Length and again while the body streams, and one deadline covers every hop. What arrives
 * is judged by its bytes, not its Content-Type, and validated like a data URL.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { ImageFetchConfig } from '../../config/schema.js';
import { ApiError, badRequest } from '../errors.js';
import { classifyAddress, isFetchableAddress } from './address-policy.js';
import { HostAllowList, urlHost, type HostMatch } from './host-allow-list.js';
import { sniffImageMime } from './image-header.js';
import { imageTooLarge, validateImageBytes, type ImageLimits, type ValidImage } from './image-url.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Name resolution, every address of a name. Tests substitute one to control what a name resolves to. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export interface ImageFetcherOptions extends Omit<ImageFetchConfig, 'enabled'>, ImageLimits {
  resolve?: Resolver;
  /** PEM roots trusted for https instead of Node's bundled ones. Tests pass a self-signed one. */
  tlsRoots?: readonly string[];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const systemResolver: Resolver = async (host) =>
  (await dnsLookup(host, { all: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

type Hop = { kind: 'redirect'; location: string } | { kind: 'body'; bytes: Buffer };

/** Why a fetch was cut short: the deadline, or the client that asked for it went away. */
type AbortCause = 'timeout' | 'client';

export class ImageFetcher {
  private readonly allowList: HostAllowList;
  private readonly resolve: Resolver;

  constructor(private readonly opts: ImageFetcherOptions) {
    this.allowList = new HostAllowList(opts.allowHosts);
    this.resolve = opts.resolve ?? systemResolver;
  }

  /**
   * The checks that need no network (URL syntax, scheme, credentials, allow-list), so a request with
   * one bad URL among several is refused before anything is fetched.
   */
  precheck(text: string, param: string): URL {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw badRequest(`${param}: not a valid URL`, param, 'invalid_image_url');
    }
    this.checkTarget(url, param, false);
    return url;
  }

  /** The image at `url`, validated, or a 4xx naming `param`. */
  async fetch(url: URL, param: string, signal?: AbortSignal): Promise<ValidImage> {
    const bytes = await this.fetchBytes(url, param, signal);
    const mime = sniffImageMime(bytes);
    if (!mime) throw badRequest(`${param}: the fetched data is not a PNG, JPEG or WebP image`, param, 'invalid_image');
    return validateImageBytes(bytes, mime, param, this.opts);
  }

  private async fetchBytes(url: URL, param: string, signal: AbortSignal | undefined): Promise<Buffer> {
    const controller = new AbortController();
    let cause: AbortCause | null = null;
    const abort = (c: AbortCause) => {
      cause ??= c;
      controller.abort();
    };
    const timer = setTimeout(() => abort('timeout'), this.opts.timeoutMs);
    const onClientGone = () => abort('client');
    if (signal?.aborted) onClientGone();
    signal?.addEventListener('abort', onClientGone, { once: true });
    try {
      let target = url;
      for (let redirects = 0; ; redirects++) {
        const addresses = await this.vet(target, param, redirects > 0, controller.signal);
        const hop = await this.get(target, addresses, param, controller.signal);
        if (hop.kind === 'body') return hop.bytes;
        if (redirects >= this.opts.maxRedirects) {
          throw badRequest(`${param}: the image URL redirected more than ${this.opts.maxRedirects} times (--image-fetch-max-redirects)`, param, 'image_fetch_too_many_redirects');
        }
        target = this.redirectTarget(target, hop.location, param);
      }
    } catch (e) {
      if (cause === 'timeout') {
        throw badRequest(`${param}: fetching the image took longer than ${this.opts.timeoutMs} ms (--image-fetch-timeout)`, param, 'image_fetch_timeout');
      }
      if (cause === 'client') throw new ApiError(499, 'the client closed the connection while its image was being fetched', { code: 'client_closed', failure: 'aborted' });
      if (e instanceof ApiError) throw e;
      throw fetchFailed(param, e);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onClientGone);
    }
  }

  private checkTarget(url: URL, param: string, redirected: boolean): HostMatch {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw badRequest(`${param}: ${redirected ? 'the image URL redirected to' : 'the image URL is'} a ${url.protocol} URL; only http and https are fetched`, param, redirected ? 'image_fetch_failed' : 'invalid_image_url');
    }
    // Credentials in a URL from a request body would be sent on to a third party; nothing needs that.
    if (url.username || url.password) {
      throw badRequest(`${param}: ${redirected ? 'the image URL redirected to a URL' : 'the image URL'} with credentials (user:password@); they are not sent`, param, redirected ? 'image_fetch_failed' : 'invalid_image_url');
    }
    const host = urlHost(url);
    const match = this.allowList.match(host);
    if (!match) {
      throw badRequest(`${param}: ${redirected ? `the image URL redirected to host '${host}'` : `host '${host}'`} is not on this server's image allow-list (--image-fetch-allow)`, param, 'image_host_not_allowed');
    }
    return match;
  }

  private redirectTarget(from: URL, location: string, param: string): URL {
    try {
      return new URL(location, from);
    } catch {
      throw badRequest(`${param}: the image server sent a redirect with an invalid Location`, param, 'image_fetch_failed');
    }
  }

  /** The addresses a hop may connect to; throws unless every address the name has is fetchable. */
  private async vet(url: URL, param: string, redirected: boolean, signal: AbortSignal): Promise<ResolvedAddress[]> {
    const match = this.checkTarget(url, param, redirected);
    const host = urlHost(url);
    const family = isIP(host);
    let addresses: ResolvedAddress[];
    if (family !== 0) addresses = [{ address: host, family: family === 6 ? 6 : 4 }];
    else {
      try {
        addresses = await untilAborted(this.resolve(host), signal);
      } catch (e) {
        if (signal.aborted) throw e;
        throw badRequest(`${param}: host '${host}' could not be resolved`, param, 'image_fetch_failed');
      }
      if (addresses.length === 0) throw badRequest(`${param}: host '${host}' could not be resolved`, param, 'image_fetch_failed');
    }
    // All, not any: a name with one public and one private address would otherwise be a coin toss.
    for (const { address } of addresses) {
      const cls = classifyAddress(address);
      if (!isFetchableAddress(cls, this.opts.allowPrivate && match === 'exact')) {
        throw badRequest(
          `${param}: host '${host}' resolves to a ${cls} address; images are only fetched from public addresses` +
            (cls === 'loopback' || cls === 'private' ? ' (--image-fetch-allow-private admits exactly-listed hosts on private networks)' : ''),
          param,
          'image_fetch_private_address',
        );
      }
    }
    return addresses;
  }

  private get(url: URL, addresses: ResolvedAddress[], param: string, signal: AbortSignal): Promise<Hop> {
    return new Promise<Hop>((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const host = urlHost(url);
      const req: ClientRequest = (secure ? httpsRequest : httpRequest)({
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { accept: 'image/png, image/jpeg, image/webp', 'accept-encoding': 'identity', 'user-agent': 'attune-image-fetch' },
        // A pooled socket could outlive the addresses it was vetted for; each hop connects afresh.
        agent: false,
        lookup: pinnedLookup(addresses),
        signal,
        ...(secure && isIP(host) === 0 ? { servername: host } : {}),
        ...(secure && this.opts.tlsRoots ? { ca: [...this.opts.tlsRoots] } : {}),
      });
      req.on('error', reject);
      req.on('response', (res) => {
        this.readResponse(req, res, param).then(resolve, (e: unknown) => {
          req.destroy();
          reject(e);
        });
      });
      req.end();
    });
  }

  private async readResponse(req: ClientRequest, res: IncomingMessage, param: string): Promise<Hop> {
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      const location = res.headers.location;
      req.destroy();
      if (!location) throw badRequest(`${param}: the image server answered ${status} without a Location`, param, 'image_fetch_failed');
      return { kind: 'redirect', location };
    }
    if (status < 200 || status > 299) {
      req.destroy();
      throw badRequest(`${param}: the image server answered ${status}`, param, 'image_fetch_failed');
    }
    const max = this.opts.maxImageBytes;
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) throw imageTooLarge(param, `the image server declares ${declared} bytes`, max);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > max) throw imageTooLarge(param, `the image is more than ${max} bytes`, max);
      chunks.push(chunk);
    }
    return { kind: 'body', bytes: Buffer.concat(chunks, received) };
  }
}

/**
 * Aborts when the HTTP response closes before it was sent: the client left, so its image need not
 * be fetched any longer.
 */
export function clientGoneSignal(res: ServerResponse): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) controller.abort();
  };
  res.on('close', onClose);
  if (res.destroyed) onClose();
  return { signal: controller.signal, dispose: () => res.off('close', onClose) };
}

/** A lookup that answers with the vetted addresses whatever the resolver would say now. */
function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return (_host, options, callback) => {
    if (options.all) callback(null, addresses.map((a) => ({ address: a.address, family: a.family })));
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** A network failure, named by its code only: the message could carry internal addresses. */
function fetchFailed(param: string, e: unknown): ApiError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return badRequest(`${param}: the image could not be fetched${code ? ` (${code})` : ''}`, param, 'image_fetch_failed');
}
