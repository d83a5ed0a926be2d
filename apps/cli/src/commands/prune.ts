/**
 * `topiary prune`: one-shot pruning with any installed pruner plugin — magnitude, Wanda, SparseGPT (element or N:M,
 * optional OWL ratios), LLM-Pruner (heads / KV groups and FFN channels, physically removed), depth (whole blocks).
 * Saves the pruned model with its tokenizer, a per-layer sparsity table and a JSON report; optionally measures
 * perplexity before and after. The pruning itself is the same stage `topiary run` executes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkNumber, TopiaryError, type CausalLM, type Raw } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { evaluatePerplexity } from '@topiary/eval';
import { isExactNM, sparsityTable } from '@topiary/prune-core';
import { createRunContext, type GlobalOptions } from '../context.js';
import { addModelFlags, loadModelFromFlags, MODEL_FLAGS_HELP, type ModelFlags } from '../model-args.js';
import { calibrationWindows, resolveCalibrationSize, saveModelWithTokenizer, type StageEnv } from '../stages/env.js';
import { preparePruner, runPruneStage } from '../stages/prune.js';

interface PruneFlags extends ModelFlags {
  method: string;
  calibration?: string;
  samples?: string;
  seqlen?: string;
  eval?: string;
  evalSeqlen?: string;
  evalBos?: boolean;
  evalLimit?: string;
  dumpCalibration?: string;
  [option: string]: unknown;
}

/** Flag → the option key pruners validate. A flag is passed on only when given; the pruner rejects keys it lacks. */
const OPTION_FLAGS: Record<string, string> = {
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
  ratio: '--ratio',
  aggregation: '--aggregation',
  ranking: '--ranking',
  global: '--global',
  attention: '--attention',
  remove: '--remove',
  score: '--score',
  iterative: '--iterative',
};

/** Errors from a pruner's validate() name option keys; the user typed flags. */
function asFlagError(e: unknown, method: string): unknown {
  if (!(e instanceof TopiaryError) || e.where === undefined) return e;
  const key = e.where.replace(/^--/, '').split('.').pop()!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const flag = OPTION_FLAGS[key] ?? (e.where.startsWith('--') ? e.where : undefined);
  if (!flag) return e;
  if (e.message === 'unknown field') {
    return new TopiaryError('E_USAGE', `is not an option of --method ${method}`, { where: flag, hint: `see topiary prune --help for what ${method} takes` });
  }
  return new TopiaryError(e.code === 'E_RECIPE' ? 'E_USAGE' : e.code, e.message, { where: flag, hint: e.hint, cause: e });
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function registerPrune(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(
    program
      .command('prune')
      .description('Prune a model once: magnitude, wanda, sparsegpt (element/N:M, OWL), llm-pruner (width), depth (blocks)'),
  )
    .requiredOption('--method <name>', 'pruner: magnitude, wanda, sparsegpt, llm-pruner, depth (or any installed pruner plugin)')
    .option('--sparsity <s>', '[element] fraction of weights to remove in every pruned linear layer, in [0, 1)')
    .option('--pattern <N:M>', '[element] semi-structured N:M sparsity, e.g. 2:4 or 4:8 (drops N of every M)')
    .option('--scope <row|layer>', '[element] compare scores within each output row or across the whole weight matrix (default: layer for magnitude, row otherwise)')
    .option('--owl', '[element] outlier-weighted layer-wise sparsity (OWL): per-block ratios with the same mean')
    .option('--owl-m <M>', '[element] OWL outlier threshold: a score above M × the layer mean (default 5)')
    .option('--owl-lambda <λ>', '[element] OWL sparsity spread around the target (default 0.08)')
    .option('--blocksize <n>', '[sparsegpt] column block size (default 128)')
    .option('--dampening <f>', '[sparsegpt] dampening, fraction of the mean Hessian diagonal (default 0.01)')
    .option('--ratio <r>', '[llm-pruner] fraction of the model’s parameters to remove, in (0, 1)')
    .option('--aggregation <how>', '[llm-pruner] group score from element scores: sum, mean, max, prod, last')
    .option('--ranking <per-layer|global>', '[llm-pruner] rank groups within each layer or across layers')
    .option('--global', '[llm-pruner] shorthand for --ranking global')
    .option('--attention <auto|head|kv-group>', '[llm-pruner] attention unit (auto: KV groups under GQA)')
    .option('--remove <k>', '[depth] number of blocks to remove')
    .option('--score <how>', '[depth] block-influence, ppl or taylor')
    .option('--iterative', '[depth] re-score after each removal')
    .option('--saliency <name>', 'score function (magnitude, wanda, taylor-element, taylor-vector, ... or a saliency plugin)')
    .option('--layers <list>', 'blocks to prune, e.g. 0-3 or 1,2; llm-pruner/depth: START:END, END exclusive (default: the method’s own)')
    .option('--batch-size <n>', 'calibration windows per pass (memory; default: 8 for element methods, as many as fit in 2048 tokens for llm-pruner/depth; second-order Taylor averages its Fisher term over these batches)')
    .option('--calibration <file>', 'text file (or .jsonl / folder of documents) the calibration windows are drawn from')
    .option('--samples <n>', "calibration windows (default: the method's own, see below; else 128)")
    .option('--seqlen <L>', "calibration window length (default: the method's own, else the model's context)")
    .option('--eval <file>', 'text file to measure perplexity on, before and after')
    .option('--eval-seqlen <L>', "perplexity window length (default: --seqlen when given, else the model's context)")
    .option('--eval-bos', 'put one BOS in front of the --eval text (default: none)')
    .option('--eval-limit <n>', 'score at most this many perplexity windows')
    .option('--dump-calibration <file>', 'write the exact calibration windows as JSON (for reference implementations)')
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}

Writes to --out DIR: the pruned model (config.json, model.safetensors; structured methods save the physically
smaller model with per-layer sizes), its tokenizer, sparsity.txt (per layer) and prune-report.json. With --json,
prints one JSON object with "sparsity" (zeros over the pruned linear layers), "parametersBefore/After" and, with
--eval, "perplexity": {"before", "after"}. The global --seed drives the calibration draw.

Calibration, as the methods' own code draws it: a text file is tokenized once as one text and --samples windows of
--seqlen tokens start at uniform random offsets (Wanda lib/data.py, SparseGPT datautils.py); a .jsonl file or a
folder of documents takes each window from a random long-enough document (their C4 rule) when at least --samples
documents are long enough, else treats them as one stream. Defaults
when --samples/--seqlen are not given — each method's published setting:
  wanda, sparsegpt, magnitude+owl   128 windows × the model's context   (Wanda / SparseGPT papers)
  llm-pruner                        10 windows × 64 tokens               (LLM-Pruner hf_prune.py)
  depth                             10 windows × 128 tokens              (Shortened LLaMA)
  other plugins                     their calibrationDefaults, else 128 × the model's context
Gradient and block-scoring passes run in batches of about 2048 tokens (one window when a window is longer;
--batch-size to change), so memory is bounded whatever --samples and --seqlen are. Perplexity (--eval): the whole file, no BOS, non-overlapping windows
of --eval-seqlen (default --seqlen when given, else the model's context).

Examples:
  $ topiary prune --model assets/models/stories260K-hf --method magnitude --sparsity 0.5 --out runs/mag50
  $ topiary prune --model assets/models/stories260K-hf --method wanda --sparsity 0.5 \\
      --calibration assets/data/tinystories_val_head.txt --samples 128 --seqlen 256 --out runs/wanda50
  $ topiary prune --model assets/models/stories260K-hf --method sparsegpt --pattern 2:4 \\
      --calibration assets/data/tinystories_val_head.txt --eval assets/data/tinystories_val_head.txt --out runs/sgpt24 --json
  $ topiary prune --model assets/models/stories260K-hf --method wanda --sparsity 0.7 --owl \\
      --calibration assets/data/tinystories_val_head.txt --out runs/wanda70-owl
  $ topiary prune --model assets/models/stories260K-hf --method llm-pruner --ratio 0.2 --saliency taylor-vector \\
      --calibration assets/data/tinystories_val_head.txt --samples 10 --seqlen 64 --out runs/llmp20
  $ topiary prune --model assets/models/stories260K-hf --method depth --remove 1 --score block-influence \\
      --calibration assets/data/tinystories_val_head.txt --samples 16 --out runs/depth1`,
    )
    .action(async (flags: PruneFlags) => {
      const g = globals();
      if (!g.out) throw new TopiaryError('E_USAGE', 'is required: the folder the pruned model is written to', { where: '--out' });
      const options: Raw = {};
      for (const key of Object.keys(OPTION_FLAGS)) if (flags[key] !== undefined) options[key] = flags[key];
      const givenSamples = flags.samples === undefined ? undefined : checkNumber(flags.samples, '--samples', { min: 1, integer: true });
      const run = await createRunContext(g);
      let model: CausalLM | undefined;
      try {
        const { backend } = await run.activateBackend();
        const loaded = await loadModelFromFlags(flags, { needTokenizer: true });
        model = loaded.model;
        const env: StageEnv = { run, backend, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, seed: g.seed };
        const givenSeqLen = flags.seqlen === undefined ? undefined : checkNumber(flags.seqlen, '--seqlen', { min: 2, integer: true });
        const prepared = (() => {
          try {
            return preparePruner(env, { method: flags.method, options, where: '', methodWhere: '--method' });
          } catch (e) {
            throw asFlagError(e, flags.method);
          }
        })();
        const { samples, seqLen } = resolveCalibrationSize({ samples: givenSamples, seqLen: givenSeqLen }, model, prepared.pruner.calibrationDefaults);
        if (seqLen > model.config.maxSeqLen) {
          throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: '--seqlen' });
        }
        const evalSeqLen = flags.evalSeqlen === undefined ? (givenSeqLen ?? model.config.maxSeqLen) : checkNumber(flags.evalSeqlen, '--eval-seqlen', { min: 2, integer: true });
        const evalLimit = flags.evalLimit === undefined ? undefined : checkNumber(flags.evalLimit, '--eval-limit', { min: 1, integer: true });
        const perplexity = async (m: CausalLM) =>
          flags.eval ? (await evaluatePerplexity(m, env.tokenizer, { file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true }, { events: run.events, limit: evalLimit })).ppl : undefined;

        const stage = {
          method: flags.method,
          options,
          where: '',
          methodWhere: '--method',
          calibration: flags.calibration ? { path: flags.calibration, samples, seqLen, seed: g.seed } : undefined,
          calibrationWhere: '--calibration',
        };
        // validate and draw the calibration windows before spending time on the "before" evaluation
        let out;
        try {
          const windows = stage.calibration ? await calibrationWindows(env, model, stage.calibration, '--calibration') : undefined;
          const before = await perplexity(model);
          out = { ...(await runPruneStage(env, model, { ...stage, windows })), before };
        } catch (e) {
          throw asFlagError(e, flags.method);
        }
        const before = out.before;
        if (out.model !== model) model.dispose();
        model = out.model;
        const { report, calibration } = out;
        if (flags.dumpCalibration && calibration) {
          writeFileSync(flags.dumpCalibration, `${JSON.stringify({ source: flags.calibration, samples, seqLen, seed: g.seed, calibration: calibration.map((w) => Array.from(w)) })}\n`);
        }
        const after = await perplexity(model);

        // A semi-structured model must be exactly N:M in every group of every pruned layer.
        const pattern = (out.result.details?.options as { pattern?: { n: number; m: number } } | undefined)?.pattern;
        let nmExact: boolean | undefined;
        if (pattern) {
          const current = model;
          nmExact = report.layers.every((l) => {
            const lin = current.linears(l.layer).find((x) => x.param === l.param)!;
            const keep = Uint8Array.from(current.readWeight(l.param), (v) => (v === 0 ? 0 : 1));
            return isExactNM(keep, lin.outFeatures, lin.inFeatures, pattern.n, pattern.m);
          });
          if (!nmExact) throw new TopiaryError('E_INTERNAL', `the pruned model is not exactly ${pattern.n}:${pattern.m}`, { where: '--pattern' });
        }

        await saveModelWithTokenizer(model, g.out, env.tokenizerPath);
        const table = sparsityTable(report);
        writeFileAtomic(join(g.out, 'sparsity.txt'), `${table}\n`);
        const result = {
          method: report.method,
          model: flags.model,
          out: g.out,
          sparsity: report.sparsity,
          target: options.sparsity === undefined ? null : Number(options.sparsity),
          pattern: pattern ? `${pattern.n}:${pattern.m}` : null,
          nmExact: nmExact ?? null,
          owl: options.owl ? true : null,
          calibration: calibration ? { file: flags.calibration, samples, seqLen, seed: g.seed } : null,
          seconds: report.seconds,
          peakRssBytes: peakRssBytes(),
          ...(flags.eval ? { perplexity: { before, after, file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true } } : {}),
          parametersBefore: report.parametersBefore,
          parametersAfter: report.parametersAfter,
          architectureBefore: out.result.architectureBefore,
          architectureAfter: out.result.architectureAfter,
          layers: report.layers,
          details: report.details ?? {},
        };
        writeJsonAtomic(join(g.out, 'prune-report.json'), result);
        if (g.json) {
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } else {
          process.stdout.write(`${table}\n\n`);
          process.stdout.write(`${report.method}: `);
          if (report.sparsity !== undefined) process.stdout.write(`sparsity ${(100 * report.sparsity).toFixed(2)}%, `);
          process.stdout.write(`parameters ${report.parametersBefore} → ${report.parametersAfter} in ${report.seconds.toFixed(2)} s`);
          if (flags.eval) process.stdout.write(`; perplexity ${before!.toFixed(3)} → ${after!.toFixed(3)}`);
          process.stdout.write(`\nsaved to ${g.out}\n`);
        }
      } finally {
        model?.dispose();
        run.close();
      }
    });
}
