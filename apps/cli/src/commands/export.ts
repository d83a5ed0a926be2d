/**
 * `topiary export --model PATH --format safetensors|padded|gguf [--dtype f32|f16|bf16|q8_0] --out PATH`: write a
 * model for deployment.
 * - `safetensors`: the Hugging Face folder Topiary writes (non-uniform layers under `topiary_layers`).
 * - `padded`: a plain, uniform LlamaForCausalLM that transformers loads unchanged: every layer padded to the largest
 *   per-layer sizes with zero rows/columns, which computes the same logits.
 * - `gguf`: one llama.cpp GGUF file (architecture `llama`; a non-uniform model as `deci` with per-layer sizes, or
 *   padded to uniform `llama` with `--pad`); q/k permuted as
 *   llama.cpp's converter does; the tokenizer's SentencePiece vocabulary is embedded.
 * `--dtype` defaults to the dtype the model was loaded with (float32 for llama2.c .bin files).
 */
import { copyFileSync, existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { TopiaryError } from '@topiary/kernel';
import { activateBackend, ggufVocab } from '@topiary/pipeline';
import {
  GGUF_DTYPES,
  ggufRefusal,
  loadedDtype,
  padToUniform,
  writeGguf,
  writeHf,
  type GgufDtype,
  type LlamaModel,
  type StorageDtype,
} from '@topiary/model-llama';
import { createRunContext, type GlobalOptions } from '../context.js';
import { DTYPE_FLAGS, MODEL_FLAGS_HELP, addModelFlags, loadModelFromFlags, type ModelFlags } from '../model-args.js';

export const EXPORT_FORMATS = ['safetensors', 'padded', 'gguf'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
const GGUF_OF: Record<StorageDtype, GgufDtype> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

interface ExportFlags extends ModelFlags {
  format?: string;
  dtype?: string;
  out?: string;
  pad?: boolean;
}

function canonical(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** The SentencePiece vocabulary for GGUF (lives in the pipeline, which the page's downloads use too). */
export { ggufVocab };

function copyTokenizer(tokenizerPath: string | undefined, dir: string): void {
  if (!tokenizerPath) return;
  copyFileSync(tokenizerPath, join(dir, basename(tokenizerPath)));
  const tokConfig = join(dirname(tokenizerPath), 'tokenizer_config.json');
  if (basename(tokenizerPath) === 'tokenizer.json' && existsSync(tokConfig)) copyFileSync(tokConfig, join(dir, 'tokenizer_config.json'));
}

/** --out for gguf: a path ending in .gguf is the file; anything else is a folder that gets model.gguf. */
function ggufPath(out: string): string {
  return out.toLowerCase().endsWith('.gguf') ? out : join(out, 'model.gguf');
}

function weightsOf(model: LlamaModel): Map<string, Float32Array> {
  return new Map([...model.parameters().keys()].map((n) => [n, model.readWeight(n)]));
}

export function registerExport(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(program.command('export').description('Export a model for deployment: Topiary safetensors, a padded uniform LlamaForCausalLM, or a llama.cpp GGUF'))
    .option('--format <format>', `output format: ${EXPORT_FORMATS.join(', ')}`)
    .option('--pad', 'gguf: pad a non-uniform model to a uniform llama model instead of writing per-layer sizes (arch deci)')
    .option('--dtype <dtype>', `storage dtype: f32, f16, bf16 (gguf also q8_0); default: the dtype the model was loaded with`)
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}

--out is the folder written (safetensors, padded) or, for gguf, the file when it ends in .gguf (else a folder that gets
model.gguf); it may
not be the model's own folder. padded writes every layer at the largest per-layer sizes with pruned heads and FFN
channels as zeros (same logits; plain config.json that transformers loads). gguf needs a SentencePiece vocabulary
(llama2.c tokenizer .bin or a byte-fallback BPE tokenizer.json); a non-uniform model is written with per-layer
head/FFN sizes (llama.cpp architecture deci, smaller and faster), or padded to uniform llama with --pad; q/k/v biases
(Qwen2) and RoPE scaling other than linear are refused.

Examples:
  $ topiary export --model runs/llmp20/model --format padded --out deploy/llmp20-hf
  $ topiary export --model assets/models/stories260K-hf --format gguf --dtype f16 --out deploy/stories.gguf
  $ topiary export --model assets/models/stories260K-hf --format safetensors --dtype bf16 --out deploy/stories-bf16`,
    )
    .action(async (flags: ExportFlags) => {
      const g = globals();
      const out = flags.out ?? g.out;
      if (flags.format === undefined) throw new TopiaryError('E_USAGE', `is required: one of ${EXPORT_FORMATS.join(', ')}`, { where: '--format' });
      if (!(EXPORT_FORMATS as readonly string[]).includes(flags.format)) {
        throw new TopiaryError('E_USAGE', `"${flags.format}" is not one of ${EXPORT_FORMATS.join(', ')}`, { where: '--format' });
      }
      const format = flags.format as ExportFormat;
      const allowed = format === 'gguf' ? GGUF_DTYPES : Object.keys(DTYPE_FLAGS);
      if (flags.dtype !== undefined && !(allowed as readonly string[]).includes(flags.dtype)) {
        throw new TopiaryError('E_USAGE', `"${flags.dtype}" is not one of ${allowed.join(', ')}${format === 'gguf' ? '' : ` for --format ${format}`}`, { where: '--dtype' });
      }
      if (!out) throw new TopiaryError('E_USAGE', `is required: the ${format === 'gguf' ? '.gguf file' : 'folder'} to write`, { where: '--out' });
      if (flags.model !== undefined && existsSync(flags.model)) {
        const input = canonical(flags.model);
        const inputDir = statSync(input).isDirectory() ? input : dirname(input);
        const target = canonical(out);
        const ggufFile = format === 'gguf' ? ggufPath(target) : target;
        if (target === input || (format !== 'gguf' && target === inputDir) || (format === 'gguf' && ggufFile === input)) {
          throw new TopiaryError('E_USAGE', `is the model being exported (${flags.model}); writing there would overwrite it`, { where: '--out', hint: 'choose another folder' });
        }
      }
      const ctx = await createRunContext(g);
      try {
        const choice = await activateBackend(ctx.container, g.backend);
        ctx.events.log('info', choice.message);
        const loaded = await loadModelFromFlags(flags, { needTokenizer: format === 'gguf' });
        const model = loaded.model;
        try {
          const source = loadedDtype(model.config) ?? 'float32';
          let result: Record<string, unknown>;
          if (format === 'gguf') {
            const refusal = ggufRefusal(model.config);
            if (refusal) throw new TopiaryError('E_USAGE', refusal.message, { where: '--format', hint: refusal.hint });
            const dtype = (flags.dtype as GgufDtype | undefined) ?? GGUF_OF[source];
            const vocab = ggufVocab(loaded.tokenizerPath!, model.config.bosId, model.config.eosId);
            const file = ggufPath(out);
            mkdirSync(dirname(resolve(file)), { recursive: true });
            const r = writeGguf(file, model.config, weightsOf(model), { dtype, vocab, name: basename(loaded.modelPath), nonUniform: flags.pad ? 'pad' : 'native' });
            result = { format, file, dtype, arch: r.arch, padded: r.padded, tensors: r.tensors, bytes: r.bytes, layers: r.config.nLayers, heads: r.config.nHeads, kvHeads: r.config.nKvHeads, ffn: r.config.hiddenDim };
          } else {
            const dtype = flags.dtype === undefined ? source : DTYPE_FLAGS[flags.dtype as keyof typeof DTYPE_FLAGS];
            mkdirSync(out, { recursive: true });
            let config = model.config;
            let weights = weightsOf(model);
            if (format === 'padded') ({ config, weights } = padToUniform(config, weights));
            writeHf(out, config, weights, { dtype });
            copyTokenizer(loaded.tokenizerPath, out);
            result = { format, folder: out, dtype, uniform: config.layers === undefined, layers: config.nLayers, heads: config.nHeads, kvHeads: config.nKvHeads, ffn: config.hiddenDim };
          }
          if (g.json) process.stdout.write(`${JSON.stringify(result)}\n`);
          else process.stdout.write(`${loaded.modelPath} → ${String(result.file ?? result.folder)} (${format}, ${String(result.dtype)}${result.padded ? ', padded to uniform' : ''})\n`);
        } finally {
          model.dispose();
        }
      } finally {
        ctx.close();
      }
    });
}
