/** `topiary eval --model PATH --perplexity FILE… --tasks NAME…`: perplexity and zero-shot tasks, one or more models. */
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { checkNumber, TopiaryError } from '@topiary/kernel';
import { activateBackend } from '@topiary/pipeline';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { compareMarkdown, defaultTaskRegistry, reportToJson, reportToLmEval, reportToMarkdown, resolveTasks, samplesJsonl, splitTaskList, TaskRegistry, type EvalReport } from '@topiary/eval';
import { evaluateModel } from '@topiary/evaluator';
import { createRunContext, type GlobalOptions } from '../context.js';
import { MODEL_FLAGS_HELP, addModelFlags, loadModelFromFlags, type ModelFlags } from '../model-args.js';

interface EvalFlags extends ModelFlags {
  inMemory?: boolean;
  maxMemory?: string;
  perplexity?: string[];
  tasks?: string[];
  limit?: number;
  stride?: number;
  bos: boolean;
  seqlen?: number;
  batchSize: number;
  compare?: string[];
  predictions: boolean;
  listTasks: boolean;
  numFewshot: number;
  fewshotSeed: number;
  bootstrapIters: number;
  logSamples: boolean;
  outputPath?: string;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number ≥ 0');
  return n;
}

/** lm-eval's folder name for a model (lm_eval/utils.py `sanitize_model_name`): runs of "<>:/\|?*[] become "__". */
function sanitizeModelName(name: string): string {
  return name.replace(/["<>:/|\\?*[\]]+/g, '__');
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

export function registerEval(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(program.command('eval').description('Evaluate models: perplexity on text files and zero-shot multiple-choice tasks'))
    .option('--perplexity <files...>', 'text files to compute perplexity on (the whole file, tokenized once, no BOS in front)')
    .option('--bos', 'put one BOS token in front of each perplexity text (the HF-tokenizer protocol of the Wanda/SparseGPT scripts)', false)
    .option('--tasks <names...>', 'zero-shot tasks: lm-eval names (see --list-tasks), comma lists (piqa,hellaswag), or task files by path (./mytask.jsonl)')
    .option('--num-fewshot <n>', "few-shot examples per document, drawn as lm-eval's sampler does (seeded)", nonNegativeInt, 0)
    .option('--fewshot-seed <n>', "lm-eval's fewshot_random_seed", nonNegativeInt, 1234)
    .option('--output-path <path>', "write lm-eval's results JSON: a .json file, or a folder (then <folder>/<model>/results.json as lm-eval names it)")
    .option('--log-samples', 'with --output-path: write samples_<task>.jsonl beside the results (per-document requests, log-likelihoods, is_greedy, metrics)', false)
    .option('--bootstrap-iters <n>', "resamples for lm-eval's bootstrap stderr of lambada perplexity (0: none)", nonNegativeInt, 100000)
    .option('--limit <n>', 'at most n windows per text file and n items per task (quick runs)', positiveInt)
    .option('--seqlen <L>', "perplexity window length (default: the model's context length)", positiveInt)
    .option('--stride <S>', 'sliding-window stride S ≤ L (default: non-overlapping windows)', positiveInt)
    .option('--batch-size <n>', 'sequences per forward pass', positiveInt, 8)
    .option('--compare <models...>', 'more models to evaluate the same way and show side by side (e.g. pruned copies)')
    .option('--predictions', 'include per-item predictions, gold labels and log-likelihoods in the --json output', false)
    .option('--list-tasks', 'list the known tasks and exit', false)
    .option('--in-memory', 'load each model whole instead of streaming it block by block (the numbers are the same)')
    .option('--max-memory <GiB>', 'streamed: host memory for the hidden states of one block-by-block pass (default 1 GiB)')
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}
Perplexity: the whole file tokenized once, no BOS in front (--bos adds one), then non-overlapping windows of
--seqlen tokens (each scores all but its first token; the tail is dropped) — the Wanda/SparseGPT protocol — or with --stride S the Hugging Face sliding-window protocol (each token scored once, with ≥ L−S tokens of context).
Tasks are scored as lm-eval-harness does (log-likelihood of each choice; acc and acc_norm by choice length;
lambada_openai: acc = greedy last word, perplexity of the last word). Names are lm-eval's (arc_easy, arc_challenge,
social_iqa, lambada_openai, piqa, hellaswag, winogrande, openbookqa, boolq_nopassage); the older names are aliases.
A task file by path is read in our schema {context, choices, label} or a public dataset's own (PIQA, HellaSwag,
ARC, OpenBookQA, WinoGrande, Social IQa, BoolQ with passages, LAMBADA {text}), told apart by its fields.
Task data is read from $TOPIARY_EVAL_DATA, the subsets shipped with @topiary/eval, or ../shared/data/eval.
--output-path writes lm-eval's results JSON (results.<task>["acc,none"], n-samples, configs, versions, n-shot, config);
the --json stdout shape is unchanged.
With --json, stdout is one object {"perplexity": {FILE: {ppl, tokens, …}}, "tasks": {NAME: {acc, acc_norm, n, …}}}
(plus "models": [...] and "comparison" with --compare). With --out DIR, eval.json and eval.md are written there.

Examples:
  $ topiary eval --model assets/models/stories260K-hf --perplexity assets/data/tinystories_val_head.txt --limit 20
  $ topiary eval --model assets/models/stories260K-hf --tasks hellaswag-mini arc-easy-dev-mini --json
  $ topiary eval --model assets/models/stories260K/stories260K.bin --tokenizer assets/models/stories260K/tok512.bin \\
      --perplexity ../shared/data/text/wikitext2_wiki.test.raw --seqlen 256 --stride 128
  $ topiary eval --model dense/ --compare pruned/ --tasks piqa,hellaswag --limit 200
  $ topiary eval --model assets/models/stories260K-hf --tasks lambada_openai,arc_easy --num-fewshot 2 --limit 50 \\
      --output-path out/ --log-samples
  $ topiary eval --list-tasks`,
    )
    .action(async (flags: EvalFlags) => {
      const g = globals();
      const registry = defaultTaskRegistry();
      if (flags.listTasks) {
        const tasks = registry.list();
        if (g.json) process.stdout.write(`${JSON.stringify({ tasks: tasks.map((t) => ({ name: t.name, aliases: t.aliases ?? [], description: t.description, dataFile: t.dataFile, source: t.source })) })}\n`);
        else for (const t of tasks) process.stdout.write(`  ${t.name.padEnd(20)} ${t.description}${t.aliases?.length ? ` (also: ${t.aliases.join(', ')})` : ''}\n`);
        return;
      }
      const files = flags.perplexity ?? [];
      const taskNames = splitTaskList(flags.tasks ?? []);
      if (files.length === 0 && taskNames.length === 0) {
        throw new TopiaryError('E_USAGE', 'nothing to evaluate', { where: '--perplexity/--tasks', hint: 'give --perplexity FILE… and/or --tasks NAME… (see --list-tasks)' });
      }
      // unknown names and task files that match no schema fail before loading anything
      const taskList = await resolveTasks(taskNames, registry);
      if (flags.logSamples && flags.outputPath === undefined) {
        throw new TopiaryError('E_USAGE', 'needs --output-path (the samples are written beside the results)', { where: '--log-samples' });
      }
      if (flags.outputPath?.endsWith('.json') && (flags.compare?.length ?? 0) > 0) {
        throw new TopiaryError('E_USAGE', 'with --compare, give a folder (one results.json per model)', { where: '--output-path' });
      }
      if (flags.stride !== undefined && flags.seqlen !== undefined && flags.stride > flags.seqlen) {
        throw new TopiaryError('E_USAGE', `must not exceed --seqlen ${flags.seqlen}, got ${flags.stride}`, { where: '--stride' });
      }
      const activationBytes = flags.maxMemory === undefined ? undefined : Math.round(checkNumber(flags.maxMemory, '--max-memory', { min: 1e-6 }) * 1024 ** 3);
      const ctx = await createRunContext(g);
      try {
        const choice = await activateBackend(ctx.container, g.backend);
        ctx.events.log('info', choice.message);
        const spec = {
          perplexity: files,
          tasks: taskList.map((t) => t.name),
          seqLen: flags.seqlen,
          stride: flags.stride,
          bos: flags.bos,
          registry: new TaskRegistry(taskList),
          task: { numFewshot: flags.numFewshot, fewshotSeed: flags.fewshotSeed, bootstrapIters: flags.bootstrapIters },
        };
        const evalCtx = { events: ctx.events, limit: flags.limit, batchSize: flags.batchSize, activationBytes };
        const reports: EvalReport[] = [];
        const modelArgs: string[] = [];
        for (const modelPath of [flags.model, ...(flags.compare ?? [])]) {
          // streamed by default: one block on the heap, all batches of a pass through it before the next block
          const loaded = await loadModelFromFlags({ model: modelPath, tokenizer: flags.tokenizer }, { needTokenizer: true, ...(flags.inMemory ? {} : { model: { residency: 'block' as const } }) });
          modelArgs.push(`pretrained=${loaded.modelPath}${loaded.tokenizerPath ? `,tokenizer=${loaded.tokenizerPath}` : ''},format=${loaded.format}`);
          try {
            reports.push(await evaluateModel({ name: loaded.modelPath, model: loaded.model, tokenizer: loaded.tokenizer! }, spec, evalCtx));
          } finally {
            loaded.model.dispose();
          }
        }
        if (flags.outputPath !== undefined) {
          for (const [i, report] of reports.entries()) {
            const lm = reportToLmEval(report, {
              modelArgs: modelArgs[i]!,
              batchSize: flags.batchSize,
              device: g.backend,
              limit: flags.limit ?? null,
              bootstrapIters: flags.bootstrapIters,
              randomSeed: g.seed,
              fewshotSeed: flags.fewshotSeed,
            });
            const resultsFile = flags.outputPath.endsWith('.json') ? flags.outputPath : join(flags.outputPath, sanitizeModelName(report.model ?? `model_${i + 1}`), 'results.json');
            writeJsonAtomic(resultsFile, lm);
            if (flags.logSamples) for (const [name, t] of Object.entries(report.tasks)) writeFileAtomic(join(dirname(resultsFile), `samples_${name}.jsonl`), samplesJsonl(t));
            ctx.events.log('info', `wrote ${resultsFile}${flags.logSamples ? ' and samples_<task>.jsonl beside it' : ''}`);
          }
        }
        const json = reportToJson(reports[0]!, { predictions: flags.predictions });
        const comparison = reports.length > 1 ? compareMarkdown(reports) : '';
        const out = {
          ...json,
          ...(reports.length > 1 ? { models: reports.map((r) => reportToJson(r, { predictions: flags.predictions })), comparison } : {}),
        };
        const markdown = `${reports.map(reportToMarkdown).join('\n')}${comparison ? `\n${comparison}` : ''}`;
        if (g.out) {
          writeJsonAtomic(join(g.out, 'eval.json'), out);
          writeFileAtomic(join(g.out, 'eval.md'), markdown);
          ctx.events.log('info', `wrote ${join(g.out, 'eval.json')} and eval.md`);
        }
        process.stdout.write(g.json ? `${JSON.stringify(out)}\n` : markdown);
      } finally {
        ctx.close();
      }
    });
}
