/**
 * An HF checkpoint directory (config.json + safetensors, single or sharded) → a DecoderCheckpoint
 * read tensor by tensor (or DecoderWeights, all in memory).
 * q/k rows stay in HF's rotate_half layout; the config says so (ropeStyle 'rotate_half').
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DecoderWeights } from './decoder-weights.js';
import { LAYER_TENSORS, readDecoderWeights, refName, type DecoderCheckpoint, type DecoderTensorRef, type LayerTensor } from './decoder-checkpoint.js';
import { parseHfDecoderConfig, type HfDecoderSpec, type TensorLayout } from './hf-config.js';
import { openSafetensors, type TensorStore } from './safetensors.js';

export async function readHfDecoderSpec(dir: string): Promise<HfDecoderSpec> {
  const path = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read config: ${(e as Error).message}`, { cause: e });
  }
  return parseHfDecoderConfig(json, path);
}

/** Reads the whole model into memory. */
export async function loadHfDecoder(dir: string): Promise<DecoderWeights> {
  const ckpt = await openHfCheckpoint(dir);
  try {
    return await readDecoderWeights(ckpt);
  } finally {
    await ckpt.close();
  }
}

/** Opens an HF checkpoint for reading tensor by tensor. Close it when done: it holds file handles. */
export async function openHfCheckpoint(dir: string): Promise<DecoderCheckpoint> {
  const spec = await readHfDecoderSpec(dir);
  const store = await openSafetensors(dir);
  try {
    return checkpointOverStore(spec, store);
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Tensors the decoder does not need and whose presence changes nothing. */
const IGNORED_SUFFIXES = ['.rotary_emb.inv_freq'];

/** The HF name of each checkpoint tensor, under the layout's model prefix. */
const HF_LAYER_NAMES: Record<LayerTensor, string> = {
  attnNorm: 'input_layernorm.weight',
  wq: 'self_attn.q_proj.weight',
  wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight',
  bq: 'self_attn.q_proj.bias',
  bk: 'self_attn.k_proj.bias',
  bv: 'self_attn.v_proj.bias',
  ffnNorm: 'post_attention_layernorm.weight',
  wGate: 'mlp.gate_proj.weight',
  wDown: 'mlp.down_proj.weight',
  wUp: 'mlp.up_proj.weight',
};

/**
 * Checks every tensor the decoder needs against config.json (names and shapes, from the headers
 * alone) and refuses tensors it would ignore, before anything is read.
 */
export function checkpointOverStore(spec: HfDecoderSpec, store: TensorStore): DecoderCheckpoint {
  const layout = pickLayout(spec, store);
  const c = spec.config;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const m = layout.model;
  const shapes: Record<LayerTensor, number[]> = {
    attnNorm: [c.dim], wq: [qDim, c.dim], wk: [kvDim, c.dim], wv: [kvDim, c.dim], wo: [c.dim, qDim],
    bq: [qDim], bk: [kvDim], bv: [kvDim], ffnNorm: [c.dim], wGate: [c.hiddenDim, c.dim], wDown: [c.dim, c.hiddenDim], wUp: [c.hiddenDim, c.dim],
  };
  const names = new Map<string, string>();
  const used = new Set<string>();
  const expect = (ref: DecoderTensorRef, name: string, shape: number[]) => {
    const info = store.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${name}: stored shape [${info.shape.join(', ')}], but config.json implies [${shape.join(', ')}]`);
    }
    names.set(refName(ref), name);
    used.add(name);
  };

  expect({ tensor: 'tokenEmbedding' }, `${m}embed_tokens.weight`, [c.vocabSize, c.dim]);
  for (let layer = 0; layer < c.nLayers; layer++) {
    for (const tensor of LAYER_TENSORS) {
      if (!spec.qkvBias && (tensor === 'bq' || tensor === 'bk' || tensor === 'bv')) continue;
      expect({ tensor, layer }, `${m}layers.${layer}.${HF_LAYER_NAMES[tensor]}`, shapes[tensor]);
    }
  }
  expect({ tensor: 'finalNorm' }, `${m}norm.weight`, [c.dim]);
  const tied = spec.tieWordEmbeddings || !store.has(layout.lmHead);
  if (tied) {
    names.set('lmHead', names.get('tokenEmbedding')!);
    // transformers ties over a stored copy (tiny-llava keeps one), so it is accounted for, not read.
    used.add(layout.lmHead);
  } else expect({ tensor: 'lmHead' }, layout.lmHead, [c.vocabSize, c.dim]);

  const leftovers = store
    .names()
    .filter((n) => n.startsWith(layout.owned) && !used.has(n) && !IGNORED_SUFFIXES.some((s) => n.endsWith(s)));
  if (leftovers.length > 0) {
    const shown = leftovers.slice(0, 5).join(', ') + (leftovers.length > 5 ? `, … (${leftovers.length} in all)` : '');
    throw new Error(`${spec.architecture}: the checkpoint has tensors this loader would ignore, so it cannot be run faithfully: ${shown}`);
  }

  return {
    config: { ...c },
    tiedClassifier: tied,
    hasQkvBias: spec.qkvBias,
    files: store.files,
    read(ref) {
      const name = names.get(refName(ref));
      if (!name) throw new Error(`${spec.architecture}: the checkpoint has no ${refName(ref)}`);
      return store.readFloat32(name);
    },
    close: () => store.close(),
  };
}

function pickLayout(spec: HfDecoderSpec, store: TensorStore): TensorLayout {
  const found = spec.layouts.find((l) => store.has(`${l.model}embed_tokens.weight`));
  if (!found) {
    const tried = spec.layouts.map((l) => `${l.model}embed_tokens.weight`).join(' or ');
    throw new Error(`${spec.architecture}: the checkpoint has no ${tried}`);
  }
  return found;
}
