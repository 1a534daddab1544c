/**
 * A thin strip of an image is tiny on the wire and under the pixel cap, but the vision tower's
 * transform grows it: resizing its shortest edge up to the tower's size (or padding it to a square)
 * multiplies its pixels by the tower's edge. Such an image is a 400 naming the field, never a 500,
 * and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const strip = async (width: number, height: number) =>
  `data:image/png;base64,${(await sharp({ create: { width, height, channels: 3, background: '#f00' } }).png({ compressionLevel: 9 }).toBuffer()).toString('base64')}`;

describe('LVLM over HTTP: images whose transform would outgrow the pixel cap', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({}, { model: 'tiny-llava' });
  });
  after(async () => {
    await s.close();
  });

  it('a 1x2,000,000 PNG (8 KB, under max_image_pixels; resized to 32x64,000,000) is a 400 naming the image, and the server keeps serving', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: await strip(1, 2_000_000) } }, { type: 'text', text: 'x' }] }],
      max_tokens: 1,
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    const e = assertErrorShape(r.body);
    assert.equal(e.param, 'messages.0.content.0.image_url.url');
    assert.equal(e.code, 'image_too_many_pixels');
    assert.equal((await getJson(`${s.url}/health`)).status, 200);
  });

  it('a 1x65,536 PNG (resized to 32x2,097,152, 67 M pixels) is refused the same way', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: await strip(65_536, 1) } }] }],
      max_tokens: 1,
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(assertErrorShape(r.body).param, 'messages.0.content.1.image_url.url');
  });
});
