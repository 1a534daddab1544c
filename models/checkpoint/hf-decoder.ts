/**
 * An HF checkpoint directory (config.json + safetensors, single or sharded) → DecoderWeights.
 * q/k rows stay in HF's rotate_half layout; the config says so (ropeStyle 'rotate_half').
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkDecoderWeights, type DecoderWeights, type LayerWeights } from './decoder-weights.js';
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

export async function loadHfDecoder(dir: string): Promise<DecoderWeights> {
  const spec = await readHfDecoderSpec(dir);
  const store = await openSafetensors(dir);
  try {
    return await decoderFromStore(spec, store);
  } finally {
    await store.close();
  }
}

/** Tensors the decoder does not need and whose presence changes nothing. */
const IGNORED_SUFFIXES = ['.rotary_emb.inv_freq'];

export async function decoderFromStore(spec: HfDecoderSpec, store: TensorStore): Promise<DecoderWeights> {
  const layout = pickLayout(spec, store);
  const c = spec.config;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const used = new Set<string>();

  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    const info = store.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${name}: stored shape [${info.shape.join(', ')}], but config.json implies [${shape.join(', ')}]`);
    }
    used.add(name);
    return store.readFloat32(name);
  };
  const m = layout.model;

  const tokenEmbedding = await read(`${m}embed_tokens.weight`, [c.vocabSize, c.dim]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `${m}layers.${l}.`;
    const layer: LayerWeights = {
      attnNorm: await read(`${p}input_layernorm.weight`, [c.dim]),
      wq: await read(`${p}self_attn.q_proj.weight`, [qDim, c.dim]),
      wk: await read(`${p}self_attn.k_proj.weight`, [kvDim, c.dim]),
      wv: await read(`${p}self_attn.v_proj.weight`, [kvDim, c.dim]),
      wo: await read(`${p}self_attn.o_proj.weight`, [c.dim, qDim]),
      ffnNorm: await read(`${p}post_attention_layernorm.weight`, [c.dim]),
      wGate: await read(`${p}mlp.gate_proj.weight`, [c.hiddenDim, c.dim]),
      wDown: await read(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim]),
      wUp: await read(`${p}mlp.up_proj.weight`, [c.hiddenDim, c.dim]),
    };
    if (spec.qkvBias) {
      layer.bq = await read(`${p}self_attn.q_proj.bias`, [qDim]);
      layer.bk = await read(`${p}self_attn.k_proj.bias`, [kvDim]);
      layer.bv = await read(`${p}self_attn.v_proj.bias`, [kvDim]);
    }
    layers.push(layer);
  }
  const finalNorm = await read(`${m}norm.weight`, [c.dim]);
  const tied = spec.tieWordEmbeddings || !store.has(layout.lmHead);
  const lmHead = tied ? tokenEmbedding : await read(layout.lmHead, [c.vocabSize, c.dim]);
  // transformers ties over a stored copy (tiny-llava keeps one), so it is accounted for, not read.
  if (tied) used.add(layout.lmHead);

  const leftovers = store
    .names()
    .filter((n) => n.startsWith(layout.owned) && !used.has(n) && !IGNORED_SUFFIXES.some((s) => n.endsWith(s)));
  if (leftovers.length > 0) {
    const shown = leftovers.slice(0, 5).join(', ') + (leftovers.length > 5 ? `, … (${leftovers.length} in all)` : '');
    throw new Error(`${spec.architecture}: the checkpoint has tensors this loader would ignore, so it cannot be run faithfully: ${shown}`);
  }

  const weights: DecoderWeights = { config: { ...c }, tokenEmbedding, layers, finalNorm, lmHead };
  checkDecoderWeights(weights);
  return weights;
}

function pickLayout(spec: HfDecoderSpec, store: TensorStore): TensorLayout {
  const found = spec.layouts.find((l) => store.has(`${l.model}embed_tokens.weight`));
  if (!found) {
    const tried = spec.layouts.map((l) => `${l.model}embed_tokens.weight`).join(' or ');
    throw new Error(`${spec.architecture}: the checkpoint has no ${tried}`);
  }
  return found;
}
