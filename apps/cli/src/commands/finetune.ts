/**
 * `topiary finetune`: recovery fine-tuning of a (pruned) model — full fine-tuning with warmup + cosine/linear decay
 * on a text corpus, optionally distilling a dense teacher's logits (α·T²·KL + (1 − α)·CE). Saves the model with its
 * tokenizer; with --eval, measures perplexity before and after recovery.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkNumber, checkOneOf, TopiaryError, type CausalLM } from '@topiary/kernel';
import { writeJsonAtomic } from '@topiary/files';
import { packBlocks, tokenizeCached } from '@topiary/corpus';
import { evaluatePerplexity } from '@topiary/eval';
import { DECAY_KINDS, finetune, type DecayKind, type FinetuneReport } from '@topiary/finetune';
import { AdamW, checkTokenizer, loadModel } from '@topiary/model-llama';
import { createRunContext, type GlobalOptions } from '../context.js';
import { addModelFlags, loadModelFromFlags, MODEL_FLAGS_HELP, type ModelFlags } from '../model-args.js';
import { runFinetune, saveModelWithTokenizer, type StageEnv } from '@topiary/pipeline';

interface FinetuneFlags extends ModelFlags {
  data?: string;
  steps?: string;
  lr: string;
  minLr: string;
  warmup?: string;
  decay: string;
  batchSize: string;
  seqlen?: string;
  weightDecay: string;
  distillFrom?: string;
  temperature: string;
  alpha: string;
  eval?: string;
  evalSeqlen?: string;
  evalBos?: boolean;
  evalLimit?: string;
}

export function registerFinetune(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(program.command('finetune').description('Recover a pruned model: short full fine-tuning, optionally distilling the dense model'))
    .option('--data <file>', 'text file to fine-tune on (packed into --seqlen windows)')
    .option('--steps <n>', 'optimiser steps')
    .option('--lr <lr>', 'peak learning rate', '1e-4')
    .option('--min-lr <lr>', 'learning rate at the last step', '0')
    .option('--warmup <n>', 'linear warmup steps (default: 10% of --steps)')
    .option('--decay <kind>', `decay after warmup: ${DECAY_KINDS.join(', ')}`, 'cosine')
    .option('--batch-size <n>', 'windows per step', '8')
    .option('--seqlen <L>', "window length (default: min(256, the model's context))")
    .option('--weight-decay <w>', 'AdamW decoupled weight decay', '0')
    .option('--distill-from <path>', 'teacher model (the dense model before pruning): match its logits')
    .option('--temperature <T>', 'distillation temperature', '2')
    .option('--alpha <a>', 'weight of the distillation term: α·T²·KL + (1 − α)·CE', '0.5')
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
      if (!flags.data) throw new TopiaryError('E_USAGE', 'is required: a text file to fine-tune on', { where: '--data' });
      if (flags.steps === undefined) throw new TopiaryError('E_USAGE', 'is required: the number of optimiser steps', { where: '--steps' });
      const steps = checkNumber(flags.steps, '--steps', { min: 1, integer: true });
      const lr = checkNumber(flags.lr, '--lr', { above: 0 });
      const minLr = checkNumber(flags.minLr, '--min-lr', { min: 0, max: lr });
      const warmup = flags.warmup === undefined ? Math.floor(steps / 10) : checkNumber(flags.warmup, '--warmup', { min: 0, max: steps, integer: true });
      const decay = checkOneOf(flags.decay, '--decay', DECAY_KINDS);
      const batchSize = checkNumber(flags.batchSize, '--batch-size', { min: 1, integer: true });
      const weightDecay = checkNumber(flags.weightDecay, '--weight-decay', { min: 0 });
      const temperature = checkNumber(flags.temperature, '--temperature', { above: 0 });
      const alpha = checkNumber(flags.alpha, '--alpha', { min: 0, max: 1 });
      const evalLimit = flags.evalLimit === undefined ? undefined : checkNumber(flags.evalLimit, '--eval-limit', { min: 1, integer: true });
      const run = await createRunContext(g);
      let model: CausalLM | undefined;
      let teacher: CausalLM | null = null;
      try {
        const { backend } = await run.activateBackend();
        const loaded = await loadModelFromFlags(flags, { needTokenizer: true });
        model = loaded.model;
        const env: StageEnv = { container: run.container, events: run.events, backend, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, seed: g.seed };
        const seqLen = flags.seqlen === undefined ? Math.min(256, model.config.maxSeqLen) : checkNumber(flags.seqlen, '--seqlen', { min: 2, max: model.config.maxSeqLen, integer: true });
        const evalSeqLen = flags.evalSeqlen === undefined ? seqLen : checkNumber(flags.evalSeqlen, '--eval-seqlen', { min: 2, integer: true });
        if (flags.distillFrom) {
          teacher = await loadModel(flags.distillFrom);
          try {
            checkTokenizer(teacher, env.tokenizer, flags.distillFrom, loaded.tokenizerPath);
          } catch (e) {
            throw e instanceof TopiaryError ? new TopiaryError(e.code, e.message, { file: flags.distillFrom, where: '--distill-from', hint: e.hint }) : e;
          }
        }
        const perplexity = async (m: CausalLM): Promise<number | undefined> =>
          flags.eval ? (await evaluatePerplexity(m, env.tokenizer, { file: flags.eval, seqLen: evalSeqLen, bos: flags.evalBos === true }, { events: run.events, limit: evalLimit })).ppl : undefined;
        const before = await perplexity(model);
        const report = await runFinetune(env, model, { data: flags.data, steps, lr, minLr, warmup, decay, batchSize, seqLen, weightDecay, teacher, temperature, alpha });
        const after = await perplexity(model);
        await saveModelWithTokenizer(model, g.out, env.tokenizerPath);
        const result = {
          model: flags.model,
          out: g.out,
          parameters: model.parameterCount(),
          steps: report.steps,
          tokens: report.tokens,
          lr,
          warmup,
          decay,
          batchSize,
          seqLen,
          distill: teacher ? { from: flags.distillFrom, temperature, alpha } : null,
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
