/**
 * Serving https with --ssl-certfile / --ssl-keyfile: a real TLS server on loopback answers a
 * completion to a client that trusts the test certificate, refuses plain http on the same port, and
 * a bad pair of files is a configuration error that names the flag.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadServerConfig } from '../../src/config/load-config.js';
import { repoRoot } from '../helpers/models-dir.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const TLS_DIR = join(repoRoot, 'test', 'fixtures', 'tls');
const certFile = join(TLS_DIR, 'localhost-cert.pem');
const keyFile = join(TLS_DIR, 'localhost-key.pem');

/** POSTs JSON over https, trusting only the test certificate. */
function postHttps(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca: readFileSync(certFile), headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('https', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ tls: { certFile, keyFile } });
  });
  after(async () => {
    await s?.close();
  });

  it('serves a completion over TLS to a client that trusts the certificate', async () => {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await postHttps(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 3, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal((r.json as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);
  });

  it('does not answer plain http on the same port', async () => {
    const plain = s.url.replace('https:', 'http:');
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest(`${plain}/health`, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
      req.end();
    });
    assert.match(outcome, /^error|status 400/, outcome);
  });

  it('needs both files, readable, and matching', () => {
    const fails = (argv: string[], pattern: RegExp) => assert.throws(() => loadServerConfig({ argv, env: {} }), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
    fails(['--ssl-certfile', certFile], /both a certificate \(--ssl-certfile\) and its key \(--ssl-keyfile\)/);
    fails(['--ssl-keyfile', keyFile], /both a certificate/);
    fails(['--ssl-certfile', join(TLS_DIR, 'missing.pem'), '--ssl-keyfile', keyFile], /cannot read --ssl-certfile .*missing\.pem/);
    fails(['--ssl-certfile', certFile, '--ssl-keyfile', certFile], /do not make a usable pair/);
    const ok = loadServerConfig({ argv: [], env: { ATTUNE_SSL_CERTFILE: certFile, ATTUNE_SSL_KEYFILE: keyFile } });
    assert.deepEqual(ok.help === false && ok.config.tls, { certFile, keyFile });
  });
});
