/**
 * The PAINT soak: guided PAINT traffic on tiny-llava (load-tests/soak/paint-workload.ts) against a
 * real server with a small batch, so guided requests (two slots each) queue, stream and are cut off
 * by their clients beside plain image and text rows. Every violation the soak finds (a malformed
 * answer, counters that disagree with the clients, a guided canary whose tokens changed, a leaked slot
 * or generation, memory growth past its bound) fails the test. ATTUNE_SOAK_PAINT_SECONDS sets the length.
 */
import { join } from 'node:path';
import { describe } from 'node:test';
import { PaintWorkload } from '../../load-tests/soak/paint-workload.js';
import { soakTest } from '../helpers/soak-suite.js';
import { modelsDir } from '../helpers/models-dir.js';

const SECONDS = Number(process.env.ATTUNE_SOAK_PAINT_SECONDS ?? 30);
const SEED = 20_241_212;

describe('soak: guided PAINT on tiny-llava', () => {
  soakTest({
    title: `serves ${SECONDS} s of guided PAINT with disconnects and bad requests, and leaks nothing`,
    seconds: SECONDS,
    model: 'tiny-llava',
    maxBatch: 5,
    concurrency: 6,
    seed: SEED,
    workload: () => new PaintWorkload(SEED, join(modelsDir, 'tiny-llava')),
  });
});
