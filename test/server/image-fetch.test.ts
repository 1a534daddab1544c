/**
 * Remote `image_url` fetching, against a real image server on loopback and real attune servers:
 * off by default; when on, only allow-listed hosts, only vetted addresses on every redirect hop
 * (and the connection pinned to them), the byte cap from Content-Length and while streaming, one
 * deadline, and the same validation as data URLs before the no-vision-tower 400.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../../src/api/errors.js';
import { classifyAddress, isFetchableAddress } from '../../src/api/images/address-policy.js';
import { HostAllowList, parseHostPattern } from '../../src/api/images/host-allow-list.js';
import { ImageFetcher, type ResolvedAddress, type Resolver } from '../../src/api/images/image-fetch.js';
import { ConfigError, loadServerConfig } from '../../src/config/load-config.js';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { closedPort } from '../helpers/file-server.js';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';
import { jpegHeader, pngHeader } from '../helpers/image-headers.js';
import { metricValue } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { repoRoot } from '../helpers/models-dir.js';

const MAX_BYTES = 4096;
const TIMEOUT_MS = 1500;
const MAX_REDIRECTS = 2;
const PARAM = 'messages.0.content.1.image_url.url';
/** Longer than the grace the server gives open connections once it closes, so a drain that did not wait would cut the request. */
const LATE_MS = 1500;


const JPEG = jpegHeader(20, 10);

function imageMessage(...urls: string[]) {
  return {
    messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, ...urls.map((url) => ({ type: 'image_url', image_url: { url } }))] }],
    max_tokens: 2,
  };
}

/** How a response of the image server ended: whether it was written out, and how many body bytes it wrote. */
interface Ending {
  finished: boolean;
  sent: number;
}

interface ImageServer {
  port: number;
  /** Paths requested so far (with query), in order. */
  hits: string[];
  /** Host headers seen, in order. */
  hosts: string[];
  /** Resolves when the response to the latest request for a path has closed. */
  ending(path: string): Promise<Ending>;
  close(): Promise<void>;
}

/**
 * A loopback server with one route per behaviour under test. Slow routes trickle bytes on a timer
 * and stop as soon as the connection goes, so the test can tell that attune hung up early.
 */
async function startImageServer(): Promise<ImageServer> {
  const hits: string[] = [];
  const hosts: string[] = [];
  const endings = new Map<string, Promise<Ending>>();
  const trickle = (res: ServerResponse, chunk: Buffer, total: number, counter: { sent: number }) => {
    const timer = setInterval(() => {
      if (res.destroyed || counter.sent >= total) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      counter.sent += chunk.length;
      res.write(chunk);
    }, 2);
    res.on('close', () => clearInterval(timer));
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.push(`${url.pathname}${url.search}`);
    hosts.push(req.headers.host ?? '');
    const counter = { sent: 0 };
    endings.set(url.pathname, new Promise((resolve) => res.on('close', () => resolve({ finished: res.writableFinished, sent: counter.sent }))));
    switch (url.pathname) {
      case '/cat.png': {
        // Labelled wrongly on purpose: the type comes from the bytes.
        const body = Buffer.concat([pngHeader(8, 8), Buffer.alloc(100)]);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
        return;
      }
      case '/cat.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG);
        return;
      case '/bomb.png':
        res.writeHead(200, { 'content-type': 'image/png' }).end(pngHeader(100_000, 100_000));
        return;
      case '/text':
        res.writeHead(200, { 'content-type': 'image/png' }).end('hello, I am not an image');
        return;
      case '/missing':
        res.writeHead(404).end('not found');
        return;
      case '/big-declared':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10 * 1024 * 1024 });
        res.write(pngHeader(8, 8));
        trickle(res, Buffer.alloc(1024), 10 * 1024 * 1024, counter);
        return;
      case '/big-streamed':
        // No Content-Length: chunked, so only counting the body can catch it.
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(pngHeader(8, 8));
        trickle(res, Buffer.alloc(1024), 10 * 1024 * 1024, counter);
        return;
      case '/slow-headers':
        return; // never answers
      case '/late.jpg': {
        // A valid image, after a pause long enough for a drain to start while it is being fetched.
        const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG), LATE_MS);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case '/slow-body':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': 1000 });
        res.write(pngHeader(8, 8));
        return; // and never the rest
      case '/redirect':
        res.writeHead(302, { location: url.searchParams.get('to') ?? '/' }).end();
        return;
      case '/loop':
        res.writeHead(307, { location: `/loop?n=${Number(url.searchParams.get('n') ?? 0) + 1}` }).end();
        return;
      default:
        res.writeHead(404).end();
    }
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    hits,
    hosts,
    ending(path) {
      const p = endings.get(path);
      assert.ok(p, `the image server never saw ${path}`);
      return p;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('image fetching', () => {
  let engine: EngineClient;
  let images: ImageServer;
  /** Default config: fetching off. */
  let off: TestServer;
  /** On, allow-listing loopback names, with --image-fetch-allow-private as tests need. */
  let open: TestServer;
  /** On, allow-listing loopback and private names, without --image-fetch-allow-private. */
  let strict: TestServer;
  let base: string;

  before(async () => {
    images = await startImageServer();
    base = `http://127.0.0.1:${images.port}`;
    engine = await startEngine();
    const limits = { maxImageBytes: MAX_BYTES };
    off = await startTestServer({ limits }, { engine });
    open = await startTestServer(
      {
        limits,
        imageFetch: { enabled: true, allowHosts: ['127.0.0.1', 'localhost', '169.254.169.254', '::ffff:169.254.169.254', '*.example.com'], allowPrivate: true, timeoutMs: TIMEOUT_MS, maxRedirects: MAX_REDIRECTS },
      },
      { engine },
    );
    strict = await startTestServer({ limits, imageFetch: { enabled: true, allowHosts: ['127.0.0.1', 'localhost', '10.0.0.1'], timeoutMs: TIMEOUT_MS } }, { engine });
  });
  after(async () => {
    await Promise.all([off?.close(), open?.close(), strict?.close()]);
    await engine?.close();
    await images?.close();
  });

  /** Posts a chat with image URLs and returns the error, asserting its status, shape and param. */
  async function refused(server: TestServer, urls: string[], code: string, param = PARAM, status = 400) {
    const r = await postJson(`${server.url}/v1/chat/completions`, imageMessage(...urls));
    assert.equal(r.status, status, JSON.stringify(r.body));
    const e = assertErrorShape(r.body);
    assert.equal(e.code, code, e.message);
    assert.equal(e.param, param, e.message);
    assert.equal(e.type, 'invalid_request_error');
    return e;
  }

  /** Runs `fn` and returns the image server paths it caused to be requested. */
  async function hitsDuring(fn: () => Promise<unknown>): Promise<string[]> {
    const before = images.hits.length;
    await fn();
    return images.hits.slice(before);
  }

  it('is off by default: an http URL is refused without being fetched', async () => {
    const hits = await hitsDuring(() => refused(off, [`${base}/cat.png`], 'image_url_fetch_disabled'));
    assert.deepEqual(hits, []);
  });

  it('refuses hosts that are not allow-listed, before fetching any image of the request', async () => {
    const hits = await hitsDuring(async () => {
      const e = await refused(open, [`http://127.0.0.2:${images.port}/cat.png`], 'image_host_not_allowed');
      assert.match(e.message, /127\.0\.0\.2.*--image-fetch-allow/);
      await refused(open, ['http://example.com/cat.png'], 'image_host_not_allowed');
      // A decimal spelling of an allowed address is the same host; a different name for it is not.
      await refused(open, [`http://[::ffff:127.0.0.1]:${images.port}/cat.png`], 'image_host_not_allowed');
      // The second URL is refused before the first is fetched.
      await refused(open, [`${base}/cat.png`, `http://evil.test:${images.port}/cat.png`], 'image_host_not_allowed', 'messages.0.content.2.image_url.url');
      await refused(open, [`http://user:pw@127.0.0.1:${images.port}/cat.png`], 'invalid_image_url');
    });
    assert.deepEqual(hits, []);
  });

  it('fetches from an allowed host, validates the bytes, then refuses for want of a vision tower', async () => {
    const hits = await hitsDuring(async () => {
      const e = await refused(open, [`${base}/cat.png`], 'model_has_no_vision_tower', 'messages.0.content.1');
      assert.match(e.message, /no vision tower/);
      await refused(open, [`http://2130706433:${images.port}/cat.jpg`], 'model_has_no_vision_tower', 'messages.0.content.1');
      // By name, through the resolver.
      await refused(open, [`http://localhost:${images.port}/cat.png`], 'model_has_no_vision_tower', 'messages.0.content.1');
    });
    assert.deepEqual(hits, ['/cat.png', '/cat.jpg', '/cat.png']);
    assert.equal(images.hosts.at(-1), `localhost:${images.port}`);
  });

  it('applies the data-URL checks to fetched bytes: the pixel cap and the image type', async () => {
    await refused(open, [`${base}/bomb.png`], 'image_too_many_pixels');
    const e = await refused(open, [`${base}/text`], 'invalid_image');
    assert.match(e.message, /not a PNG, JPEG or WebP/);
  });

  it('refuses an image whose Content-Length is over the cap, and hangs up at once', async () => {
    // The code says it was the size, not the fetch deadline, that ended it.
    const e = await refused(open, [`${base}/big-declared`], 'image_too_large');
    assert.match(e.message, /declares 10485760 bytes.*max_image_bytes/);
    const end = await within(2000, images.ending('/big-declared'), 'the image server sees the connection close');
    assert.equal(end.finished, false);
    assert.ok(end.sent < 64 * 1024, `sent ${end.sent} bytes`);
  });

  it('refuses a streamed body without Content-Length as soon as it passes the cap', async () => {
    const e = await refused(open, [`${base}/big-streamed`], 'image_too_large');
    assert.match(e.message, new RegExp(`more than ${MAX_BYTES} bytes`));
    const end = await within(2000, images.ending('/big-streamed'), 'the image server sees the connection close');
    assert.equal(end.finished, false);
    assert.ok(end.sent < 64 * 1024, `sent ${end.sent} bytes`);
  });

  it('gives up on a slow server at the deadline, whether headers or body are slow', async () => {
    for (const path of ['/slow-headers', '/slow-body']) {
      const started = performance.now();
      const e = await refused(open, [`${base}${path}`], 'image_fetch_timeout');
      const took = performance.now() - started;
      assert.match(e.message, new RegExp(`${TIMEOUT_MS} ms`));
      // Not before the deadline (the code says the deadline ended it, not anything else).
      assert.ok(took >= TIMEOUT_MS - 50, `${path} gave up after ${took} ms`);
      const end = await within(2000, images.ending(path), 'the image server sees the connection close');
      assert.equal(end.finished, false);
    }
  });

  it('follows a redirect to an allowed host and validates what it finds there', async () => {
    const hits = await hitsDuring(() => refused(open, [`${base}/redirect?to=/cat.png`], 'model_has_no_vision_tower', 'messages.0.content.1'));
    assert.deepEqual(hits, ['/redirect?to=/cat.png', '/cat.png']);
  });

  it('refuses a redirect to a host that is not allow-listed', async () => {
    for (const to of ['http://evil.test/cat.png', `http://127.0.0.2:${images.port}/cat.png`]) {
      const e = await refused(open, [`${base}/redirect?to=${encodeURIComponent(to)}`], 'image_host_not_allowed');
      assert.match(e.message, /redirected to host/);
    }
  });

  it('refuses a redirect to a metadata or other link-local address without connecting, even with allow-private', async () => {
    // Both are on the allow-list, so only the address check stands between them and the fetch.
    for (const to of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/latest/meta-data/']) {
      // The address check's own code: a connect to the unreachable address would have ended in
      // image_fetch_timeout or image_fetch_failed instead.
      const e = await refused(open, [`${base}/redirect?to=${encodeURIComponent(to)}`], 'image_fetch_private_address');
      assert.match(e.message, /link-local/);
    }
    const e = await refused(open, ['http://169.254.169.254/latest/meta-data/'], 'image_fetch_private_address');
    assert.match(e.message, /169\.254\.169\.254.*link-local/);
  });

  it('refuses a redirect to another scheme, an error status, a refused connection, and too many redirects', async () => {
    const ftp = await refused(open, [`${base}/redirect?to=${encodeURIComponent('ftp://127.0.0.1/cat.png')}`], 'image_fetch_failed');
    assert.match(ftp.message, /ftp:/);
    const missing = await refused(open, [`${base}/missing`], 'image_fetch_failed');
    assert.match(missing.message, /404/);
    const nobody = await refused(open, [`http://127.0.0.1:${await closedPort()}/cat.png`], 'image_fetch_failed');
    assert.match(nobody.message, /ECONNREFUSED/);
    assert.doesNotMatch(nobody.message, /127\.0\.0\.1/, 'network errors are named by code, not by address');
    const hits = await hitsDuring(() => refused(open, [`${base}/loop`], 'image_fetch_too_many_redirects'));
    assert.equal(hits.length, MAX_REDIRECTS + 1, hits.join(' '));
  });

  it('without --image-fetch-allow-private, refuses loopback and private addresses of allowed hosts without connecting', async () => {
    const hits = await hitsDuring(async () => {
      for (const url of [`${base}/cat.png`, `http://localhost:${images.port}/cat.png`, 'http://10.0.0.1/cat.png']) {
        const e = await refused(strict, [url], 'image_fetch_private_address');
        assert.match(e.message, /(loopback|private) address.*--image-fetch-allow-private/);
      }
    });
    assert.deepEqual(hits, []);
  });

  describe('during a drain', () => {
    /** A server of its own (the drain closes it) with a chat that is waiting on the fetch of `path`. */
    async function waitingOnFetch(path: string) {
      const s = await startTestServer({ imageFetch: { enabled: true, allowHosts: ['127.0.0.1'], allowPrivate: true, timeoutMs: 30_000 } }, { engine });
      try {
        const answer = postJson(`${s.url}/v1/chat/completions`, imageMessage(`${base}${path}`));
        await waitFor(() => images.hits.includes(path), `the fetch of ${path} to start`);
        return { s, answer };
      } catch (e) {
        await s.close();
        throw e;
      }
    }

    it('waits for a chat whose image is still being fetched', async () => {
      const { s, answer } = await waitingOnFetch('/late.jpg');
      assert.deepEqual(await s.app.attune.drain(30), { completed: true });
      // The fetch finished and the request went on to its usual answer, not a cut connection.
      const r = await answer;
      assert.equal(r.status, 400);
      assert.equal(assertErrorShape(r.body).code, 'model_has_no_vision_tower');
    });

    it('past its deadline, stops the fetch and answers 503 with Retry-After', async () => {
      const { s, answer } = await waitingOnFetch('/slow-headers?during-drain');
      assert.deepEqual(await s.app.attune.drain(0.2), { completed: false });
      const r = await answer;
      assert.equal(r.status, 503);
      assert.equal(assertErrorShape(r.body).code, 'unavailable');
      assert.match(assertErrorShape(r.body).message, /shut down before the request finished/);
      assert.ok(r.headers.get('retry-after'));
      // The image server never answers this path: the fetch ends only because attune hung up.
      await within(5000, images.ending('/slow-headers'), 'attune hanging up on the image server');
      const text = await s.app.attune.metrics.render();
      assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'aborted' }), 1);
    });
  });

  it('still serves text chats afterwards', async () => {
    const r = await postJson<{ choices: { message: { content: string } }[] }>(`${open.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 2 });
    assert.equal(r.status, 200);
  });

  describe('the fetcher on its own', () => {
    const limits = { maxImageBytes: MAX_BYTES, maxImagePixels: 4096 * 4096 };

    function fetcher(allowHosts: string[], resolve: (host: string) => ResolvedAddress[], allowPrivate = true) {
      const calls: string[] = [];
      const f = new ImageFetcher({
        ...limits,
        allowHosts,
        allowPrivate,
        timeoutMs: TIMEOUT_MS,
        maxRedirects: MAX_REDIRECTS,
        resolve: async (host) => {
          calls.push(host);
          return resolve(host);
        },
      });
      return { f, calls };
    }

    async function code(p: Promise<unknown>): Promise<string | null> {
      try {
        await p;
        return 'ok';
      } catch (e) {
        assert.ok(e instanceof ApiError, String(e));
        return e.code;
      }
    }

    it('fetches over https, checking the certificate against the URL host, not the pinned address', async () => {
      const tls = join(repoRoot, 'test', 'fixtures', 'tls');
      const cert = readFileSync(join(tls, 'localhost-cert.pem'), 'utf8');
      const server = createHttpsServer({ cert, key: readFileSync(join(tls, 'localhost-key.pem'), 'utf8') }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const options = { ...limits, allowHosts: ['localhost', 'other.images.test'], allowPrivate: true, timeoutMs: TIMEOUT_MS, maxRedirects: 0 };
        const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
        const trusting = new ImageFetcher({ ...options, resolve: loopback, tlsRoots: [cert] });
        const img = await trusting.fetch(trusting.precheck(`https://localhost:${port}/cat.jpg`, 'u'), 'u');
        assert.deepEqual({ mime: img.mime, width: img.width, height: img.height }, { mime: 'image/jpeg', width: 20, height: 10 });
        // Same address, but a name the certificate does not cover.
        await assert.rejects(trusting.fetch(trusting.precheck(`https://other.images.test:${port}/cat.jpg`, 'u'), 'u'),
          (e: unknown) => e instanceof ApiError && e.code === 'image_fetch_failed' && /ERR_TLS_CERT_ALTNAME_INVALID/.test(e.message));
        // Node's bundled roots do not trust a self-signed certificate.
        const stock = new ImageFetcher({ ...options, resolve: loopback });
        await assert.rejects(stock.fetch(stock.precheck(`https://localhost:${port}/cat.jpg`, 'u'), 'u'),
          (e: unknown) => e instanceof ApiError && e.code === 'image_fetch_failed' && /SELF_SIGNED/.test(e.message));
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it('connects to the address it vetted, not to what the name resolves to later (rebinding)', async () => {
      let n = 0;
      // First answer loopback, then a private address that would hang the connect if it were used.
      const { f, calls } = fetcher(['images.test'], () => [{ address: n++ === 0 ? '127.0.0.1' : '10.255.255.1', family: 4 }]);
      const url = f.precheck(`http://images.test:${images.port}/cat.png`, 'u');
      const img = await f.fetch(url, 'u');
      assert.deepEqual({ mime: img.mime, width: img.width, height: img.height }, { mime: 'image/png', width: 8, height: 8 });
      assert.deepEqual(calls, ['images.test']);
      assert.equal(images.hosts.at(-1), `images.test:${images.port}`);
    });

    it('resolves again on each redirect hop, and refuses a hop that resolves to a refused address', async () => {
      const answers: Record<string, string> = { 'a.images.test': '127.0.0.1', 'b.images.test': '169.254.169.254' };
      const { f, calls } = fetcher(['a.images.test', 'b.images.test'], (h) => [{ address: answers[h]!, family: 4 }]);
      const to = encodeURIComponent(`http://b.images.test:${images.port}/cat.png`);
      assert.equal(await code(f.fetch(f.precheck(`http://a.images.test:${images.port}/redirect?to=${to}`, 'u'), 'u')), 'image_fetch_private_address');
      assert.deepEqual(calls, ['a.images.test', 'b.images.test']);
    });

    it('lets only exactly-listed hosts reach private addresses, and judges every address of a name', async () => {
      const loopback = () => [{ address: '127.0.0.1', family: 4 as const }];
      const wild = fetcher(['*.images.test'], loopback);
      assert.equal(await code(wild.f.fetch(wild.f.precheck(`http://a.images.test:${images.port}/cat.png`, 'u'), 'u')), 'image_fetch_private_address');
      const mixed = fetcher(['images.test'], () => [
        { address: '93.184.216.34', family: 4 },
        { address: '::ffff:10.0.0.1', family: 6 },
      ], false);
      assert.equal(await code(mixed.f.fetch(mixed.f.precheck('http://images.test/cat.png', 'u'), 'u')), 'image_fetch_private_address');
      const unresolvable = fetcher(['images.test'], () => []);
      assert.equal(await code(unresolvable.f.fetch(unresolvable.f.precheck('http://images.test/cat.png', 'u'), 'u')), 'image_fetch_failed');
    });

    it('stops fetching when the client goes away', async () => {
      const { f } = fetcher(['127.0.0.1'], () => []);
      const gone = new AbortController();
      setTimeout(() => gone.abort(), 100);
      // client_closed, not image_fetch_timeout: the abort ended it, before the deadline could.
      assert.equal(await code(f.fetch(f.precheck(`${base}/slow-headers`, 'u'), 'u', gone.signal)), 'client_closed');
    });
  });

  describe('address and host rules', () => {
    it('classifies addresses, IPv4 inside IPv6 included', () => {
      const cases: Record<string, string> = {
        '8.8.8.8': 'public',
        '127.0.0.1': 'loopback',
        '127.255.0.9': 'loopback',
        '10.0.0.1': 'private',
        '172.16.0.1': 'private',
        '172.32.0.1': 'public',
        '192.168.1.1': 'private',
        '100.64.0.1': 'shared',
        '169.254.169.254': 'link-local',
        '224.0.0.251': 'multicast',
        '0.0.0.0': 'unspecified',
        '255.255.255.255': 'reserved',
        '::': 'unspecified',
        '::1': 'loopback',
        '::ffff:127.0.0.1': 'loopback',
        '::ffff:a9fe:a9fe': 'link-local',
        '::ffff:8.8.8.8': 'public',
        '64:ff9b::a00:1': 'private',
        '2002:c0a8:101::1': 'private',
        'fe80::1%eth0': 'link-local',
        'fd00:ec2::254': 'metadata',
        'fd12::1': 'private',
        'ff02::1': 'multicast',
        '2001:db8::1': 'reserved',
        '2606:4700:4700::1111': 'public',
        'not an address': 'reserved',
      };
      for (const [ip, cls] of Object.entries(cases)) assert.equal(classifyAddress(ip), cls, ip);
      assert.equal(isFetchableAddress('loopback', false), false);
      assert.equal(isFetchableAddress('loopback', true), true);
      assert.equal(isFetchableAddress('private', true), true);
      for (const cls of ['link-local', 'metadata', 'shared', 'multicast', 'unspecified', 'reserved'] as const) assert.equal(isFetchableAddress(cls, true), false, cls);
    });

    it('matches hosts exactly or below a *. domain, in canonical form', () => {
      const list = new HostAllowList(['images.example.com', '*.cdn.example.org', '2130706433', '[::1]']);
      assert.equal(list.match('images.example.com'), 'exact');
      assert.equal(list.match('a.images.example.com'), null);
      assert.equal(list.match('a.cdn.example.org'), 'wildcard');
      assert.equal(list.match('a.b.cdn.example.org'), 'wildcard');
      assert.equal(list.match('cdn.example.org'), null);
      assert.equal(list.match('evilcdn.example.org'), null);
      assert.equal(list.match('127.0.0.1'), 'exact');
      assert.equal(list.match('::1'), 'exact');
      for (const bad of ['http://example.com', 'example.com:80', 'example.com/x', 'user@example.com', '*', '*.', '*.10.0.0.1', '']) assert.equal(parseHostPattern(bad), null, bad);
    });

    it('reads the flags and env vars, and refuses fetching on with nothing allowed', () => {
      const loaded = loadServerConfig({
        argv: ['--image-fetch', '--image-fetch-allow', 'images.example.com', '--image-fetch-allow', '*.cdn.example.org', '--image-fetch-timeout', '2500'],
        env: { ATTUNE_IMAGE_FETCH_MAX_REDIRECTS: '1', ATTUNE_IMAGE_FETCH_ALLOW_PRIVATE: 'true' },
      });
      assert.ok(!loaded.help);
      assert.deepEqual(loaded.config.imageFetch, { enabled: true, allowHosts: ['images.example.com', '*.cdn.example.org'], allowPrivate: true, timeoutMs: 2500, maxRedirects: 1 });
      const defaults = loadServerConfig({ argv: [], env: {} });
      assert.ok(!defaults.help);
      assert.equal(defaults.config.imageFetch.enabled, false);
      assert.throws(() => loadServerConfig({ argv: ['--image-fetch'], env: {} }), (e: unknown) => e instanceof ConfigError && /imageFetch\.allowHosts.*--image-fetch-allow/.test(e.message));
      assert.throws(() => loadServerConfig({ argv: ['--image-fetch-allow', 'http://x/'], env: {} }), (e: unknown) => e instanceof ConfigError && /allowHosts\.0/.test(e.message));
    });
  });
});
