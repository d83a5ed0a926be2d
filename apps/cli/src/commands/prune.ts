/**
 * `topiary prune`: one-shot pruning with any installed pruner plugin — magnitude, Wanda, SparseGPT (element or N:M,
 * optional OWL ratios), LLM-Pruner (heads / KV groups and FFN channels, physically removed), depth (whole blocks).
 * Saves the pruned model with its tokenizer, a per-layer sparsity table and a JSON report; optionally measures
 * perplexity before and after. The pruning itself is the same stage `topiary run` executes.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkNumber, coerceFlagValue, optionFields, TopiaryError, UnknownFieldError, type CausalLM, type OptionField, type Pruner, type Raw } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { evaluatePerplexity } from '@topiary/eval';
import { isExactNM, sparsityTable } from '@topiary/prune-core';
import { calibrationWindows, copyTokenizer, DEFAULT_CALIBRATION_SAMPLES, modelPathError, openStreamedPrune, preparePruner, resolveCalibrationSize, runPruneStage, saveModelWithTokenizer, type StageEnv } from '@topiary/pipeline';
import { loadModel, SlimmableStream, type LlamaModel } from '@topiary/model-llama';
import type { Catalog } from '../catalog.js';
import { createRunContext, type GlobalOptions } from '../context.js';
import { addModelFlags, dtypeFromFlag, DTYPE_HELP, loadModelFromFlags, MODEL_FLAGS_HELP, type ModelFlags } from '../model-args.js';

interface PruneFlags extends ModelFlags {
  method?: string;
  calibration?: string;
  samples?: string;
  seqlen?: string;
  eval?: string;
  evalSeqlen?: string;
  evalBos?: boolean;
  evalLimit?: string;
  dumpCalibration?: string;
  inMemory?: boolean;
  resume?: boolean;
  maxMemory?: string;
  spillDir?: string;
  [option: string]: unknown;
}

/** The command's own flags: a pruner option with one of these names is not offered as a flag (a recipe can still set it). */
const OWN_FLAGS = new Set(['--model', '--tokenizer', '--method', '--calibration', '--samples', '--seqlen', '--eval', '--eval-seqlen', '--eval-bos', '--eval-limit', '--dump-calibration', '--dtype', '--in-memory', '--resume', '--max-memory', '--spill-dir', '--out', '--backend', '--seed', '--json', '--log-format', '--quiet', '--debug', '--plugin', '--allow-plugin-path', '--device', '--help', '--version']);

/** One flag offered by `topiary prune`, and the installed pruners whose schema declares it. */
interface PrunerFlag {
  field: OptionField;
  /** commander's attribute name for the flag (`--owl-m` → `owlM`). */
  attribute: string;
  methods: string[];
}

function attributeOf(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Every installed pruner's option fields as flags: one flag per name, tagged with the methods that take it. */
export function prunerFlags(pruners: readonly Pruner[]): Map<string, PrunerFlag> {
  const flags = new Map<string, PrunerFlag>();
  for (const pruner of pruners) {
    for (const field of optionFields(pruner.options)) {
      if (OWN_FLAGS.has(field.flag)) continue;
      const seen = flags.get(field.flag);
      if (seen) seen.methods.push(pruner.name);
      else flags.set(field.flag, { field, attribute: attributeOf(field.flag), methods: [pruner.name] });
    }
  }
  return flags;
}

/** The per-method section of --help: each installed pruner, what it is, its flags with defaults and choices. */
function methodsHelp(pruners: readonly Pruner[], only?: string): string {
  const shown = only ? pruners.filter((p) => p.name === only) : pruners;
  return shown
    .map((pruner) => {
      const fields = optionFields(pruner.options).filter((f) => !OWN_FLAGS.has(f.flag));
      const lines = fields.map((f) => {
        const extra = [f.required ? 'required' : '', f.default !== undefined ? `default ${JSON.stringify(f.default)}` : ''].filter(Boolean).join('; ');
        const head = `    ${f.flag}${f.boolean ? '' : ` <${f.valueName}>`}`;
        return `${head.padEnd(34)} ${f.description}${extra ? ` (${extra})` : ''}`;
      });
      const data = typeof pruner.needsCalibration === 'boolean' && pruner.needsCalibration ? 'needs --calibration' : 'calibration only when its options need data';
      return `  ${pruner.name} — ${pruner.description} [${data}]\n${lines.join('\n') || '    (no options)'}`;
    })
    .join('\n');
}

/** Each installed pruner's default calibration, one line each. */
function calibrationTable(pruners: readonly Pruner[]): string {
  const width = Math.max(8, ...pruners.map((p) => p.name.length));
  return pruners
    .map((p) => {
      const cal = p.calibrationDefaults;
      const size = cal ? `${cal.samples} windows × ${cal.seqLen !== undefined ? `${cal.seqLen} tokens` : "the model's context"}` : `${DEFAULT_CALIBRATION_SAMPLES} windows × the model's context`;
      const data = typeof p.needsCalibration === 'boolean' && !p.needsCalibration ? ' (only when its options need data)' : '';
      return `  ${p.name.padEnd(width)}  ${size.padEnd(36)} ${cal ? `(${cal.source})` : ''}${data}`;
    })
    .join('\n');
}

/** Flags of another method, and pruner errors that name option keys, become errors naming the flag the user typed. */
function asFlagError(e: unknown, method: string, flags: Map<string, PrunerFlag>): unknown {
  if (!(e instanceof TopiaryError) || e.where === undefined || e.where.startsWith('--')) return e;
  const key = e.where.split(/[.[]/)[0]!;
  const flag = [...flags.values()].find((f) => f.field.key === key);
  if (!flag) return e;
  const where = flag.field.flag;
  if (e instanceof UnknownFieldError) {
    return new TopiaryError('E_USAGE', `is not an option of --method ${method}`, { where, hint: `see topiary prune --help --method ${method} for what ${method} takes` });
  }
  return new TopiaryError(e.code === 'E_RECIPE' ? 'E_USAGE' : e.code, e.message, { where, hint: e.hint, cause: e });
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function registerPrune(program: Command, globals: () => GlobalOptions, catalog: Catalog): void {
  const flagsOfPruners = prunerFlags(catalog.pruners);
  const command = addModelFlags(
    program
      .command('prune')
      .description('Prune a model once: magnitude, wanda, sparsegpt (element/N:M, OWL), llm-pruner (width), depth (blocks)'),
  )
    // required, but checked in the action: commander checks required options before unknown ones, and
    // `prune --bogus` must be told about --bogus, not about --method
    .option('--method <name>', `pruner (required): ${catalog.pruners.map((p) => p.name).join(', ') || 'an installed pruner plugin'}`)
    .option('--calibration <file>', 'text file (or .jsonl / folder of documents) the calibration windows are drawn from')
    .option('--samples <n>', "calibration windows (default: the method's own, see below; else 128)")
    .option('--seqlen <L>', "calibration window length (default: the method's own, else the model's context)")
    .option('--eval <file>', 'text file to measure perplexity on, before and after')
    .option('--eval-seqlen <L>', "perplexity window length (default: --seqlen when given, else the model's context)")
    .option('--eval-bos', 'put one BOS in front of the --eval text (default: none)')
    .option('--eval-limit <n>', 'score at most this many perplexity windows')
    .option('--dtype <f32|f16|bf16>', DTYPE_HELP)
    .option('--in-memory', 'load the whole model instead of streaming it block by block (every method streams by default)')
    .option('--resume', 'continue a streamed prune that was interrupted, into the same --out folder')
    .option('--max-memory <GiB>', 'streamed: host memory for calibration hidden states and for modified blocks before either spills to disk (default: hidden states all in memory, 2 GiB of blocks), and per evaluation pass (1 GiB)')
    .option('--spill-dir <dir>', 'streamed: folder for what spills (default: a temporary folder, removed afterwards)')
    .option('--dump-calibration <file>', 'write the exact calibration windows as JSON (for reference implementations)')
    .addHelpText('after', () => {
      const only = catalog.method;
      return `${MODEL_FLAGS_HELP}

Methods installed and the options each takes (from each pruner's own schema; \`--help --method NAME\` shows one):
${methodsHelp(catalog.pruners, catalog.pruners.some((p) => p.name === only) ? only : undefined)}

Writes to --out DIR: the pruned model (config.json, model.safetensors; structured methods save the physically
smaller model with per-layer sizes), its tokenizer, sparsity.txt (per layer) and prune-report.json. With --json,
prints one JSON object with "sparsity" (zeros over the pruned linear layers), "parametersBefore/After" and, with
--eval, "perplexity": {"before", "after"}. The global --seed drives the calibration draw.

Calibration, as the methods' own code draws it: a text file is tokenized once as one text and --samples windows of
--seqlen tokens start at uniform random offsets (Wanda lib/data.py, SparseGPT datautils.py); a .jsonl file or a
folder of documents takes each window from a random long-enough document (their C4 rule) when at least --samples
documents are long enough, else treats them as one stream. Defaults when --samples/--seqlen are not given — each
method's published setting (its calibrationDefaults), else ${DEFAULT_CALIBRATION_SAMPLES} windows × the model's context (the Wanda / SparseGPT papers'):
${calibrationTable(catalog.pruners)}
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
      --calibration assets/data/tinystories_val_head.txt --samples 16 --out runs/depth1`;
    });
  for (const { field, methods } of flagsOfPruners.values()) {
    command.option(`${field.flag}${field.boolean ? '' : ` <${field.valueName}>`}`, `[${methods.join(', ')}] ${field.description}`);
  }
  command.action(async (given: PruneFlags) => {
      const g = globals();
      if (given.method === undefined) {
        const names = catalog.pruners.map((p) => p.name).join(', ');
        throw new TopiaryError('E_USAGE', 'is required: the pruner to use', { where: '--method', hint: names ? `installed: ${names} (topiary prune --help --method NAME)` : 'install a pruner plugin, e.g. @topiary/pruner-magnitude' });
      }
      const flags = given as PruneFlags & { method: string };
      if (!g.out) throw new TopiaryError('E_USAGE', 'is required: the folder the pruned model is written to', { where: '--out' });
      const dtype = dtypeFromFlag(flags.dtype); // checked before any work
      // the method's own options, from the flags its schema declares; another method's flag is an error
      const chosen = catalog.pruners.find((p) => p.name === flags.method);
      const own = new Set(chosen ? optionFields(chosen.options).map((f) => f.flag) : []);
      const options: Raw = {};
      for (const { field, attribute } of flagsOfPruners.values()) {
        const value = flags[attribute];
        if (value === undefined) continue;
        if (chosen && !own.has(field.flag)) {
          throw new TopiaryError('E_USAGE', `is not an option of --method ${flags.method}`, { where: field.flag, hint: `see topiary prune --help --method ${flags.method} for what ${flags.method} takes` });
        }
        options[field.key] = coerceFlagValue(field, value);
      }
      const givenSamples = flags.samples === undefined ? undefined : checkNumber(flags.samples, '--samples', { min: 1, integer: true });
      // the files it reads, before any work (a missing one is named with its flag)
      if (flags.model !== undefined) {
        const missing = modelPathError(flags.model, '--model');
        if (missing) throw missing;
      }
      for (const [flag, path] of [['--calibration', flags.calibration], ['--eval', flags.eval]] as const) {
        if (path !== undefined && !existsSync(path)) throw new TopiaryError('E_IO', `no such file or folder: ${path}`, { where: flag });
      }
      const maxMemory = flags.maxMemory === undefined ? undefined : Math.round(checkNumber(flags.maxMemory, '--max-memory', { min: 1e-6 }) * 1024 ** 3);
      const run = await createRunContext(g);
      let model: CausalLM | undefined;
      try {
        const { backend } = await run.activateBackend();
        const prepared = (() => {
          try {
            return preparePruner({ container: run.container }, { method: flags.method, options, where: '', methodWhere: '--method' });
          } catch (e) {
            throw asFlagError(e, flags.method, flagsOfPruners);
          }
        })();
        // Methods that say they can stream the model (one block on the heap) do, unless --in-memory: block-by-block
        // methods write each block as soon as it is pruned (and can --resume); structured methods that remove by plan
        // (LLM-Pruner, depth: `streamsBySlimPlan`) score block by block and slim by plan, and the smaller model is
        // written block by block at the end. Any other method (a third-party structured pruner) gets the whole model.
        const structured = prepared.pruner.streamsBySlimPlan === true;
        const streamed = (prepared.pruner.streams === true || structured) && flags.inMemory !== true;
        const writesBlocks = streamed && prepared.pruner.streams === true;
        if (!streamed) {
          for (const [flag, given] of [['--resume', flags.resume], ['--max-memory', flags.maxMemory], ['--spill-dir', flags.spillDir]] as const) {
            if (given !== undefined) {
              throw new TopiaryError('E_USAGE', `applies to a streamed prune, and ${flags.inMemory ? '--in-memory was given' : `--method ${flags.method} needs the whole model in memory`}`, { where: flag });
            }
          }
        } else if (!writesBlocks && flags.resume !== undefined) {
          throw new TopiaryError('E_USAGE', `applies to block-by-block methods; --method ${flags.method} changes the model's shape and writes it once, at the end`, {
            where: '--resume',
            hint: 'run the command again without --resume (into an empty --out)',
          });
        }
        const spill = { ...(maxMemory !== undefined ? { maxMemory } : {}), ...(flags.spillDir !== undefined ? { spillDir: flags.spillDir } : {}) };
        const loaded = await loadModelFromFlags(flags, { needTokenizer: true, ...(streamed ? { model: { residency: 'block' as const, spill } } : {}) });
        model = loaded.model;
        if (streamed && !writesBlocks) {
          // a streamed model that can be masked by group and slimmed by plan (the slim model is cut from the checkpoint)
          model.dispose();
          model = SlimmableStream.open(loaded.modelPath, { spill });
        }
        const env: StageEnv = { container: run.container, events: run.events, backend, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, seed: g.seed };
        const givenSeqLen = flags.seqlen === undefined ? undefined : checkNumber(flags.seqlen, '--seqlen', { min: 2, integer: true });
        const { samples, seqLen } = resolveCalibrationSize({ samples: givenSamples, seqLen: givenSeqLen }, model, prepared.pruner.calibrationDefaults);
        if (seqLen > model.config.maxSeqLen) {
          throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: '--seqlen' });
        }
        const evalSeqLen = flags.evalSeqlen === undefined ? (givenSeqLen ?? model.config.maxSeqLen) : checkNumber(flags.evalSeqlen, '--eval-seqlen', { min: 2, integer: true });
        const evalLimit = flags.evalLimit === undefined ? undefined : checkNumber(flags.evalLimit, '--eval-limit', { min: 1, integer: true });
        const perplexity = async (m: CausalLM) =>
          flags.eval
            ? (await evaluatePerplexity(m, env.tokenizer, { file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true }, { events: run.events, limit: evalLimit, activationBytes: maxMemory })).ppl
            : undefined;
        const perplexityOfInput = async (path: string): Promise<number | undefined> => {
          const pristine = await loadModel(path, { residency: 'block' });
          try {
            return await perplexity(pristine);
          } finally {
            pristine.dispose();
          }
        };
        const calibrationSpec = flags.calibration ? { path: flags.calibration, samples, seqLen, seed: g.seed } : undefined;
        const stream = writesBlocks
          ? openStreamedPrune(model as LlamaModel, loaded.modelPath, g.out, { dtype, resume: flags.resume === true, job: { method: flags.method, options, calibration: calibrationSpec ?? null } })
          : undefined;
        if (stream && stream.resumed > 0) run.events.log('info', `resuming: ${stream.resumed} of ${model.numBlocks} blocks were written by the interrupted run`);

        const stage = {
          method: flags.method,
          options,
          where: '',
          methodWhere: '--method',
          calibration: calibrationSpec,
          calibrationWhere: '--calibration',
          ...(stream ? { streaming: { ...stream.hooks, activationBytes: maxMemory, spillDir: flags.spillDir } } : streamed ? { streaming: { activationBytes: maxMemory, spillDir: flags.spillDir } } : {}),
        };
        // validate and draw the calibration windows before spending time on the "before" evaluation
        let out;
        try {
          const windows = stage.calibration ? await calibrationWindows(env, model, stage.calibration, '--calibration') : undefined;
          // a resumed run's model already holds pruned blocks: "before" is measured on the input as it is on disk
          const before = stream && stream.resumed > 0 && flags.eval ? await perplexityOfInput(loaded.modelPath) : await perplexity(model);
          out = { ...(await runPruneStage(env, model, { ...stage, windows })), before };
        } catch (e) {
          throw asFlagError(e, flags.method, flagsOfPruners);
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

        if (stream) {
          stream.finish();
          copyTokenizer(env.tokenizerPath, g.out);
        } else {
          await saveModelWithTokenizer(model, g.out, env.tokenizerPath, { dtype });
        }
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
          streamed,
          ...(stream ? { resumedBlocks: stream.resumed } : {}),
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
