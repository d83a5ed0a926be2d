/**
 * `topiary prune`: one-shot post-training pruning (magnitude, Wanda, SparseGPT — whatever pruner plugins are
 * installed), unstructured or N:M, optional OWL ratios; saves the pruned model with its tokenizer, a per-layer
 * sparsity table and a JSON report; optionally evaluates perplexity before and after.
 */
import { copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import {
  checkNumber,
  resolveNamed,
  Tokens,
  TopiaryError,
  type PruneContext,
  type Pruner,
  type Raw,
  type Saliency,
  type TensorBackend,
} from '@topiary/kernel';
import { loadTokenizer, findTokenizerIn, sampleCalibration, tokenizeCached } from '@topiary/corpus';
import { evaluatePerplexity } from '@topiary/eval';
import { loadModel, saveModel } from '@topiary/model-llama';
import { checkLayers, isExactNM, sparsityTable } from '@topiary/prune-core';
import { createRunContext, type GlobalOptions } from '../context.js';

interface PruneFlags {
  model: string;
  tokenizer?: string;
  method: string;
  sparsity?: string;
  pattern?: string;
  scope?: string;
  owl?: boolean;
  owlM?: string;
  owlLambda?: string;
  saliency?: string;
  layers?: string;
  blocksize?: string;
  dampening?: string;
  calibration?: string;
  samples: string;
  seqlen?: string;
  batchSize?: string;
  eval?: string;
  evalSeqlen?: string;
  evalLimit?: string;
  dumpCalibration?: string;
}

/** Flag names for the option keys pruners validate, so errors name what the user typed. */
const FLAG: Record<string, string> = {
  sparsity: '--sparsity',
  pattern: '--pattern',
  scope: '--scope',
  owl: '--owl',
  owlM: '--owl-m',
  owlLambda: '--owl-lambda',
  saliency: '--saliency',
  layers: '--layers',
  blocksize: '--blocksize',
  dampening: '--dampening',
  batchSize: '--batch-size',
};

function asFlagError(e: unknown): unknown {
  if (e instanceof TopiaryError && e.where !== undefined) {
    const key = e.where.split('.').pop()!;
    if (FLAG[key]) return new TopiaryError(e.code === 'E_RECIPE' ? 'E_USAGE' : e.code, e.message, { where: FLAG[key], hint: e.hint, cause: e });
  }
  return e;
}

/** The tokenizer beside a model: its folder's tokenizer.json / tokenizer.bin / tok*.bin. */
function defaultTokenizer(model: string): string {
  const dir = existsSync(model) && statSync(model).isDirectory() ? model : dirname(model);
  const found = findTokenizerIn(dir);
  if (!found) throw new TopiaryError('E_USAGE', `no tokenizer next to the model in ${dir}`, { where: '--tokenizer', hint: 'pass --tokenizer FILE' });
  return found;
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function registerPrune(program: Command, globals: () => GlobalOptions): void {
  program
    .command('prune')
    .description('One-shot post-training pruning: magnitude, Wanda or SparseGPT; unstructured or N:M; optional OWL layer ratios')
    .requiredOption('--model <path>', 'model: HF folder, .safetensors file or llama2.c .bin')
    .option('--tokenizer <file>', 'tokenizer (default: the one beside the model)')
    .requiredOption('--method <name>', 'pruner: magnitude, wanda, sparsegpt (or any installed pruner plugin)')
    .option('--sparsity <s>', 'fraction of weights to remove in every pruned linear layer, in [0, 1)')
    .option('--pattern <N:M>', 'semi-structured N:M sparsity, e.g. 2:4 or 4:8 (drops N of every M)')
    .option('--scope <row|layer>', 'compare scores within each output row (default) or across the layer')
    .option('--owl', 'outlier-weighted layer-wise sparsity (OWL): per-block ratios with the same mean')
    .option('--owl-m <M>', 'OWL outlier threshold: a score above M × the layer mean (default 5)')
    .option('--owl-lambda <λ>', 'OWL sparsity spread around the target (default 0.08)')
    .option('--saliency <name>', 'score function for magnitude/wanda (magnitude, wanda, or a saliency plugin)')
    .option('--layers <list>', 'blocks to prune, e.g. 0-3 or 1,2 (default all)')
    .option('--blocksize <n>', 'SparseGPT column block size (default 128)')
    .option('--dampening <f>', 'SparseGPT dampening, fraction of the mean Hessian diagonal (default 0.01)')
    .option('--calibration <file>', 'text file the calibration windows are drawn from')
    .option('--samples <n>', 'calibration windows', '128')
    .option('--seqlen <L>', "calibration window length (default: the model's context)")
    .option('--batch-size <n>', 'calibration windows per forward call (memory only)')
    .option('--eval <file>', 'text file to measure perplexity on, before and after')
    .option('--eval-seqlen <L>', 'perplexity window length (default --seqlen)')
    .option('--eval-limit <n>', 'score at most this many perplexity windows')
    .option('--dump-calibration <file>', 'write the exact calibration windows as JSON (for reference implementations)')
    .addHelpText(
      'after',
      `
Writes to --out DIR: the pruned model (config.json, model.safetensors), its tokenizer, sparsity.txt (per layer)
and prune-report.json. With --json, prints one JSON object with "sparsity" (zeros over the pruned linear layers)
and, with --eval, "perplexity": {"before", "after"}. Use the global --seed for the calibration draw.

Examples:
  $ topiary prune --model assets/models/stories260K-hf --method magnitude --sparsity 0.5 --out runs/mag50
  $ topiary prune --model assets/models/stories260K-hf --method wanda --sparsity 0.5 \\
      --calibration assets/data/tinystories_val_head.txt --samples 128 --seqlen 256 --out runs/wanda50
  $ topiary prune --model assets/models/stories260K-hf --method sparsegpt --pattern 2:4 \\
      --calibration assets/data/tinystories_val_head.txt --eval assets/data/tinystories_val_head.txt --out runs/sgpt24 --json
  $ topiary prune --model assets/models/stories260K-hf --method wanda --sparsity 0.7 --owl \\
      --calibration assets/data/tinystories_val_head.txt --out runs/wanda70-owl`,
    )
    .action(async (flags: PruneFlags) => {
      const g = globals();
      if (!g.out) throw new TopiaryError('E_USAGE', 'is required: the folder the pruned model is written to', { where: '--out' });
      const run = await createRunContext(g);
      try {
        const pruner = resolveNamed(run.container, Tokens.Pruner, flags.method, 'pruner', '--method') as Pruner;
        const raw: Raw = {};
        const put = (key: string, value: unknown) => {
          if (value !== undefined) raw[key] = value;
        };
        put('sparsity', flags.sparsity);
        put('pattern', flags.pattern);
        put('scope', flags.scope);
        put('owl', flags.owl ? true : undefined);
        put('owlM', flags.owlM);
        put('owlLambda', flags.owlLambda);
        put('saliency', flags.saliency);
        put('layers', flags.layers);
        put('blocksize', flags.blocksize);
        put('dampening', flags.dampening);
        put('batchSize', flags.batchSize);
        let options: Record<string, unknown>;
        try {
          options = pruner.validate(raw, '');
        } catch (e) {
          throw asFlagError(e);
        }
        const backend = resolveNamed(run.container, Tokens.TensorBackend, g.backend, 'backend', '--backend') as TensorBackend;
        const availability = await backend.available();
        if (!availability.ok) throw new TopiaryError('E_BACKEND', availability.reason, { where: '--backend', hint: availability.fix });
        await backend.init();

        const tokenizerFile = flags.tokenizer ?? defaultTokenizer(flags.model);
        const tokenizer = await loadTokenizer(tokenizerFile);
        const model = await loadModel(flags.model, { tokenizer, tokenizerFile });
        checkLayers(model, options.layers as number[] | undefined); // before any data is read: fail fast
        const seqLen = flags.seqlen === undefined ? model.config.maxSeqLen : checkNumber(flags.seqlen, '--seqlen', { min: 2, integer: true });
        if (seqLen > model.config.maxSeqLen) {
          throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: '--seqlen' });
        }
        const samples = checkNumber(flags.samples, '--samples', { min: 1, integer: true });
        const wantsData = pruner.needsCalibration || options.owl !== undefined || (flags.saliency !== undefined && flags.saliency !== 'magnitude');
        let calibration: Int32Array[] | undefined;
        if (flags.calibration) {
          const corpus = await tokenizeCached(flags.calibration, tokenizer).catch((e: unknown) => {
            throw e instanceof TopiaryError && e.code === 'E_IO' ? new TopiaryError('E_IO', e.message, { file: flags.calibration, where: '--calibration', hint: e.hint, cause: e }) : e;
          });
          calibration = sampleCalibration(corpus, { samples, seqLen, seed: g.seed, file: flags.calibration });
          if (flags.dumpCalibration) {
            writeFileSync(flags.dumpCalibration, `${JSON.stringify({ source: flags.calibration, samples, seqLen, seed: g.seed, calibration: calibration.map((w) => Array.from(w)) })}\n`);
          }
        } else if (wantsData) {
          throw new TopiaryError('E_USAGE', `--method ${pruner.name}${options.owl ? ' with --owl' : ''} needs calibration data`, {
            where: '--calibration',
            hint: 'pass --calibration FILE (a text file in the model’s domain)',
          });
        }

        const evalSeqLen = flags.evalSeqlen === undefined ? seqLen : checkNumber(flags.evalSeqlen, '--eval-seqlen', { min: 2, integer: true });
        const evalLimit = flags.evalLimit === undefined ? undefined : checkNumber(flags.evalLimit, '--eval-limit', { min: 1, integer: true });
        const perplexity = async () =>
          flags.eval ? (await evaluatePerplexity(model, tokenizer, { file: flags.eval, seqLen: evalSeqLen }, { events: run.events, limit: evalLimit })).ppl : undefined;
        const before = await perplexity();

        const ctx: PruneContext = {
          backend,
          events: run.events,
          calibration,
          saliency: (name: string): Saliency => resolveNamed(run.container, Tokens.Saliency, name, 'saliency', '--saliency'),
        };
        const { report } = await pruner.prune(model, options, ctx);
        const after = await perplexity();

        // A semi-structured model must be exactly N:M in every group of every pruned layer.
        const pattern = options.pattern as { n: number; m: number } | undefined;
        let nmExact: boolean | undefined;
        if (pattern) {
          nmExact = report.layers.every((l) => {
            const lin = model.linears(l.layer).find((x) => x.param === l.param)!;
            const keep = Uint8Array.from(model.readWeight(l.param), (v) => (v === 0 ? 0 : 1));
            return isExactNM(keep, lin.outFeatures, lin.inFeatures, pattern.n, pattern.m);
          });
          if (!nmExact) throw new TopiaryError('E_INTERNAL', `the pruned model is not exactly ${pattern.n}:${pattern.m}`, { where: '--pattern' });
        }

        mkdirSync(g.out, { recursive: true });
        await saveModel(model, g.out);
        copyFileSync(tokenizerFile, join(g.out, basename(tokenizerFile)));
        const tokConfig = join(dirname(tokenizerFile), 'tokenizer_config.json');
        if (basename(tokenizerFile) === 'tokenizer.json' && existsSync(tokConfig)) copyFileSync(tokConfig, join(g.out, 'tokenizer_config.json'));
        const table = sparsityTable(report);
        writeFileSync(join(g.out, 'sparsity.txt'), `${table}\n`);
        const result = {
          method: report.method,
          model: flags.model,
          out: g.out,
          sparsity: report.sparsity,
          target: options.sparsity,
          pattern: pattern ? `${pattern.n}:${pattern.m}` : null,
          nmExact: nmExact ?? null,
          owl: options.owl ?? null,
          calibration: calibration ? { file: flags.calibration, samples, seqLen, seed: g.seed } : null,
          seconds: report.seconds,
          peakRssBytes: peakRssBytes(),
          ...(flags.eval ? { perplexity: { before, after, file: flags.eval, seqLen: evalSeqLen } } : {}),
          parametersBefore: report.parametersBefore,
          parametersAfter: report.parametersAfter,
          layers: report.layers,
          details: report.details ?? {},
        };
        writeFileSync(join(g.out, 'prune-report.json'), `${JSON.stringify(result, null, 2)}\n`);
        model.dispose();
        if (g.json) {
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } else {
          process.stdout.write(`${table}\n\n`);
          process.stdout.write(`${report.method}: sparsity ${(100 * (report.sparsity ?? 0)).toFixed(2)}% in ${report.seconds.toFixed(2)} s`);
          if (flags.eval) process.stdout.write(`; perplexity ${before!.toFixed(3)} → ${after!.toFixed(3)}`);
          process.stdout.write(`\nsaved to ${g.out}\n`);
        }
      } finally {
        run.close();
      }
    });
}
