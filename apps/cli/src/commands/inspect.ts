/** `topiary inspect --model PATH`: configuration, parameter counts per kind, and parameter groups per layer. */
import type { Command } from 'commander';
import type { GroupKind } from '@topiary/kernel';
import { groupCounts, layerShape, loadedDtype, type LlamaModel } from '@topiary/model-llama';
import type { GlobalOptions } from '../context.js';
import { MODEL_FLAGS_HELP, addModelFlags, loadModelFromFlags, type ModelFlags } from '../model-args.js';

export interface ParameterCounts {
  total: number;
  embedding: number;
  attention: number;
  mlp: number;
  norm: number;
  lmHead: number;
}

/** Parameters by kind, from the HF names and the shapes (no weight is read). */
export function countParameters(model: LlamaModel): ParameterCounts {
  const c: ParameterCounts = { total: 0, embedding: 0, attention: 0, mlp: 0, norm: 0, lmHead: 0 };
  for (const [name, shape] of model.parameterShapes()) {
    const size = shape.reduce((a, d) => a * d, 1);
    c.total += size;
    if (name === 'model.embed_tokens.weight') c.embedding += size;
    else if (name === 'lm_head.weight') c.lmHead += size;
    else if (name.includes('.self_attn.')) c.attention += size;
    else if (name.includes('.mlp.')) c.mlp += size;
    else c.norm += size;
  }
  return c;
}

export interface LayerInfo {
  index: number;
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
  headKvMap?: readonly number[];
  parameters: number;
  groups: { head: number; 'kv-group': number; 'ffn-channel': number };
}

export interface ModelDescription {
  config: LlamaModel['config'];
  uniform: boolean;
  parameters: ParameterCounts;
  groups: Record<GroupKind, number>;
  layers: LayerInfo[];
}

export function describeModel(model: LlamaModel): ModelDescription {
  const cfg = model.config;
  const counts = groupCounts(cfg); // from the shapes: building a 7B model's groups would take seconds
  const layers = [...Array(cfg.nLayers).keys()].map((i): LayerInfo => {
    const shape = layerShape(cfg, i);
    const params = model.linears(i).reduce((s, l) => s + l.inFeatures * l.outFeatures, 0) + 2 * cfg.dim;
    return {
      index: i,
      nHeads: shape.nHeads,
      nKvHeads: shape.nKvHeads,
      hiddenDim: shape.hiddenDim,
      ...(shape.headKvMap ? { headKvMap: shape.headKvMap } : {}),
      parameters: params,
      groups: counts.layers[i]!,
    };
  });
  return {
    config: cfg,
    uniform: cfg.layers === undefined,
    parameters: countParameters(model),
    groups: counts.total,
    layers,
  };
}

function human(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

export function registerInspect(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(
    program
      .command('inspect')
      .description('Show a model: configuration, parameter counts per kind, and prunable groups per layer'),
  )
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}

Examples:
  $ topiary inspect --model assets/models/stories260K-hf
  $ topiary inspect --model assets/models/stories260K/stories260K.bin --tokenizer assets/models/stories260K/tok512.bin
  $ topiary inspect --model runs/example/model --json`,
    )
    .action(async (flags: ModelFlags) => {
      const g = globals();
      // streamed: only the headers are read (config, tensor names, shapes, dtype) — instant at any size
      const loaded = await loadModelFromFlags(flags, { needTokenizer: false, model: { residency: 'block' } });
      try {
        const info = {
          model: loaded.modelPath,
          format: loaded.format,
          dtype: loadedDtype(loaded.model.config) ?? 'float32',
          ...(loaded.tokenizer ? { tokenizer: { file: loaded.tokenizerPath, name: loaded.tokenizer.name, vocabSize: loaded.tokenizer.vocabSize } } : {}),
          ...describeModel(loaded.model),
        };
        if (g.json) {
          process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
          return;
        }
        const c = loaded.model.config;
        const p = info.parameters;
        const out: string[] = [];
        out.push(`${loaded.modelPath} (${loaded.format}, ${info.dtype})`);
        out.push(
          `  dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv, head dim ${c.headDim}), ffn ${c.hiddenDim}, vocab ${c.vocabSize}, context ${c.maxSeqLen}`,
        );
        out.push(`  rms eps ${c.normEps}, rope theta ${c.ropeTheta}, embeddings ${c.tiedEmbeddings ? 'tied' : 'untied'}, bos ${c.bosId}, eos ${c.eosId}`);
        if (loaded.tokenizer) out.push(`  tokenizer ${loaded.tokenizerPath} (${loaded.tokenizer.vocabSize} tokens)`);
        out.push(
          `  parameters ${human(p.total)} (${p.total}): embedding ${p.embedding}, attention ${p.attention}, mlp ${p.mlp}, norm ${p.norm}${p.lmHead ? `, lm_head ${p.lmHead}` : ''}`,
        );
        const gs = info.groups;
        out.push(`  groups: ${Object.entries(gs).map(([k, n]) => `${n} ${k}`).join(', ')}`);
        out.push('  layer  heads  kv  ffn    params');
        for (const l of info.layers) {
          out.push(`  ${String(l.index).padStart(5)}  ${String(l.nHeads).padStart(5)}  ${String(l.nKvHeads).padStart(2)}  ${String(l.hiddenDim).padStart(5)}  ${String(l.parameters).padStart(8)}`);
        }
        process.stdout.write(`${out.join('\n')}\n`);
      } finally {
        loaded.model.dispose();
      }
    });
}
