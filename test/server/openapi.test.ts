/** /openapi.json is generated from the routes' own zod schemas; /ping and /version answer as vLLM's do. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../helpers/models-dir.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

interface OpenApiDoc {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, Record<string, unknown>> } }> } }>>;
}

describe('OpenAPI, /ping and /version', () => {
  let s: TestServer;
  before(async () => {
    // An API key is set: these routes stay open, as vLLM's are.
    s = await startTestServer({ apiKeys: ['k'], limits: { maxMessages: 37, maxStopStrings: 5 } });
  });
  after(async () => {
    await s.close();
  });

  it('describes every route, with request bodies from the zod schemas the routes validate with', async () => {
    const r = await fetch(`${s.url}/openapi.json`);
    assert.equal(r.status, 200);
    const doc = (await r.json()) as OpenApiDoc;
    assert.match(doc.openapi, /^3\./);
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(doc.info.version, version);
    for (const path of ['/v1/completions', '/v1/chat/completions', '/v1/models', '/v1/calibrators', '/tokenize', '/detokenize', '/health', '/ready', '/ping', '/version', '/metrics']) {
      assert.ok(doc.paths[path], `${path} is described`);
    }
    const body = (path: string) => doc.paths[path]!.post!.requestBody!.content['application/json']!.schema.properties;
    const completions = body('/v1/completions');
    for (const field of ['prompt', 'max_tokens', 'min_tokens', 'logit_bias', 'stop', 'calibration', 'prompt_logprobs', 'echo']) assert.ok(completions[field], field);
    // The configured limits are in the document: it is rendered from this server's schemas.
    assert.equal(body('/v1/chat/completions').messages!.maxItems, 37);
    assert.ok(JSON.stringify(completions.stop).includes('"maxItems":5'));
  });

  it('answers /ping (GET and POST) and /version without a key', async () => {
    for (const method of ['GET', 'POST']) assert.equal((await fetch(`${s.url}/ping`, { method })).status, 200, method);
    const v = await fetch(`${s.url}/version`);
    assert.equal(v.status, 200);
    assert.match(((await v.json()) as { version: string }).version, /^\d+\.\d+\.\d+/);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401, 'the API itself still needs the key');
  });
});
