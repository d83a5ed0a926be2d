/**
 * `topiary finetune`: recovery fine-tuning of a (pruned) model — full fine-tuning with warmup + cosine/linear decay
 * on a text corpus, optionally distilling a dense teacher's logits (α·T²·KL + (1 − α)·CE). Saves the model with its
 * tokenizer; with --eval, measures perplexity before and after recovery.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkNumber, TopiaryError, type CausalLM } from '@topiary/kernel';
import { writeJsonAtomic } from '@topiary/files';
import { evaluatePerplexity } from '@topiary/eval';
import { finetuneOptions, resolveFinetuneOptions } from '@topiary/finetune';
import { checkTokenizer, loadModel } from '@topiary/model-llama';
import { finetuneSeqLen, runFinetune, saveModelWithTokenizer, type StageEnv } from '@topiary/pipeline';
import { createRunContext, type GlobalOptions } from '../context.js';
import { addModelFlags, dtypeFromFlag, DTYPE_HELP, loadModelFromFlags, MODEL_FLAGS_HELP, type ModelFlags } from '../model-args.js';
import { addSchemaFlags, asFlagError, valuesFromFlags } from '../schema-flags.js';

interface FinetuneFlags extends ModelFlags {
  eval?: string;
  evalSeqlen?: string;
  evalBos?: boolean;
  evalLimit?: string;
  [option: string]: unknown;
}

export function registerFinetune(program: Command, globals: () => GlobalOptions): void {
  const command = addModelFlags(program.command('finetune').description('Recover a pruned model: short full fine-tuning, optionally distilling the dense model'));
  // the fine-tuning options, from the one schema a recipe's finetune stage uses too
  const fields = addSchemaFlags(command, finetuneOptions);
  command
    .option('--dtype <f32|f16|bf16>', DTYPE_HELP)
    .option('--eval <file>', 'text file to measure perplexity on, before and after recovery')
    .option('--eval-seqlen <L>', 'perplexity window length (default --seqlen)')
    .option('--eval-bos', 'put one BOS in front of the --eval text (default: none)')
    .option('--eval-limit <n>', 'score at most this many perplexity windows')
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}

Writes the fine-tuned model (config.json with per-layer sizes, model.safetensors, tokenizer) and
finetune-report.json to --out DIR. With --json prints one JSON object: parameters, steps, first/last loss and,
with --eval, "perplexity": {"before", "after"}.

Examples:
  $ topiary finetune --model runs/llmp20 --data assets/data/tinystories_val_head.txt --steps 100 --lr 1e-4 --out runs/llmp20-ft
  $ topiary finetune --model runs/llmp20 --data assets/data/tinystories_val_head.txt --steps 200 \\
      --distill-from assets/models/stories260K-hf --temperature 2 --alpha 0.5 \\
      --eval assets/data/tinystories_val_head.txt --eval-limit 20 --out runs/llmp20-kd --json`,
    )
    .action(async (flags: FinetuneFlags) => {
      const g = globals();
      if (!g.out) throw new TopiaryError('E_USAGE', 'is required: the folder the fine-tuned model is written to', { where: '--out' });
      const dtype = dtypeFromFlag(flags.dtype); // checked before any work
      const evalLimit = flags.evalLimit === undefined ? undefined : checkNumber(flags.evalLimit, '--eval-limit', { min: 1, integer: true });
      const run = await createRunContext(g);
      let model: CausalLM | undefined;
      let teacher: CausalLM | null = null;
      try {
        const raw = valuesFromFlags(flags, fields);
        if (raw.data === undefined) throw new TopiaryError('E_USAGE', 'is required: a text file to fine-tune on', { where: '--data' });
        const options = (() => {
          try {
            return resolveFinetuneOptions(raw, '', run.container);
          } catch (e) {
            throw asFlagError(e, fields);
          }
        })();
        const { backend } = await run.activateBackend();
        const loaded = await loadModelFromFlags(flags, { needTokenizer: true });
        model = loaded.model;
        const env: StageEnv = { container: run.container, events: run.events, backend, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, seed: g.seed };
        const seqLen = (() => {
          try {
            return finetuneSeqLen(options, model, '--seqlen');
          } catch (e) {
            throw e instanceof TopiaryError ? new TopiaryError('E_USAGE', e.message, { where: '--seqlen' }) : e;
          }
        })();
        const evalSeqLen = flags.evalSeqlen === undefined ? seqLen : checkNumber(flags.evalSeqlen, '--eval-seqlen', { min: 2, integer: true });
        if (options.distillFrom) {
          teacher = await loadModel(options.distillFrom);
          try {
            checkTokenizer(teacher, env.tokenizer, options.distillFrom, loaded.tokenizerPath);
          } catch (e) {
            throw e instanceof TopiaryError ? new TopiaryError(e.code, e.message, { file: options.distillFrom, where: '--distill-from', hint: e.hint }) : e;
          }
        }
        const perplexity = async (m: CausalLM): Promise<number | undefined> =>
          flags.eval ? (await evaluatePerplexity(m, env.tokenizer, { file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true }, { events: run.events, limit: evalLimit })).ppl : undefined;
        const before = await perplexity(model);
        const report = await runFinetune(env, model, { options, seqLen, teacher, dataWhere: '--data', seqLenWhere: '--seqlen' });
        const after = await perplexity(model);
        await saveModelWithTokenizer(model, g.out, env.tokenizerPath, { dtype });
        const result = {
          model: flags.model,
          out: g.out,
          parameters: model.parameterCount(),
          steps: report.steps,
          tokens: report.tokens,
          lr: options.lr,
          warmup: options.warmup,
          decay: options.decay,
          batchSize: options.batchSize,
          seqLen,
          distill: teacher ? { from: options.distillFrom, temperature: options.temperature, alpha: options.alpha } : null,
          firstLoss: report.firstLoss,
          lastLoss: report.lastLoss,
          seconds: report.seconds,
          ...(flags.eval ? { perplexity: { before, after, file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true } } : {}),
        };
        writeJsonAtomic(join(g.out, 'finetune-report.json'), { ...result, losses: report.losses });
        if (g.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else {
          process.stdout.write(`finetune: ${report.steps} steps, loss ${report.firstLoss.toFixed(4)} → ${report.lastLoss.toFixed(4)} in ${report.seconds.toFixed(1)} s`);
          if (flags.eval) process.stdout.write(`; perplexity ${before!.toFixed(3)} → ${after!.toFixed(3)}`);
          process.stdout.write(`\nsaved to ${g.out}\n`);
        }
      } finally {
        model?.dispose();
        teacher?.dispose();
        run.close();
      }
    });
}
