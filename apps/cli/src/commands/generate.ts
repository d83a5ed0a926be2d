/** `topiary generate --model PATH --prompt "…"`: sample a continuation with a KV cache. */
import { InvalidArgumentError, type Command } from 'commander';
import { activateBackend } from '@topiary/pipeline';
import { generate } from '@topiary/model-llama';
import { createRunContext, type GlobalOptions } from '../context.js';
import { MODEL_FLAGS_HELP, addModelFlags, loadModelFromFlags, type ModelFlags } from '../model-args.js';

interface GenerateFlags extends ModelFlags {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  samples: number;
}

function number(kind: 'int' | 'float', min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n)) || n < min || n > max) {
      throw new InvalidArgumentError(`must be ${kind === 'int' ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    }
    return n;
  };
}

export function registerGenerate(program: Command, globals: () => GlobalOptions): void {
  addModelFlags(program.command('generate').description('Generate text from a prompt (greedy or sampled, seeded)'))
    .option('--prompt <text>', 'text to continue (BOS is prepended)', '')
    .option('--max-tokens <n>', 'tokens to generate at most', number('int', 1), 128)
    .option('--temperature <t>', '0 = greedy; higher = more random', number('float', 0), 0)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', number('int', 0), 0)
    .option('--top-p <p>', 'sample among the smallest set reaching probability p', number('float', 0, 1), 1)
    .option('--seed <n>', 'sampling seed (default: the global --seed)', number('int', 0))
    .option('--samples <n>', 'continuations of the prompt, decoded together (sample i uses seed + i)', number('int', 1, 1024), 1)
    .addHelpText(
      'after',
      `${MODEL_FLAGS_HELP}
The prompt and its continuation go to stdout; with --json one object {prompt, text, fullText, ids, tokens, seconds}.
With --samples N > 1 the N continuations are decoded together (one step feeds a token of each: on small models
nearly N times the tokens per second of one); sample i is what --seed (seed + i) gives alone. Stdout then has each
continuation after a "--- sample i" line; --json gives {prompt, samples: [{text, fullText, ids, tokens}], tokens,
seconds}.

Examples:
  $ topiary generate --model assets/models/stories260K-hf --prompt "Once upon a time"
  $ topiary generate --model assets/models/stories260K/stories260K.bin --tokenizer assets/models/stories260K/tok512.bin \\
      --prompt "Lily went" --temperature 0.8 --top-p 0.9 --seed 7 --max-tokens 200
  $ topiary --backend cpu generate --model runs/example/model --prompt "The cat" --json
  $ topiary generate --model assets/models/stories260K-hf --prompt "Tom had" --temperature 0.8 --samples 8`,
    )
    .action(async (flags: GenerateFlags) => {
      const g = globals();
      const ctx = await createRunContext(g);
      try {
        const choice = await activateBackend(ctx.container, g.backend);
        ctx.events.log('info', choice.message);
        const loaded = await loadModelFromFlags(flags, { needTokenizer: true });
        const tokenizer = loaded.tokenizer!;
        try {
          const promptIds = tokenizer.encode(flags.prompt, { bos: true });
          const started = performance.now();
          const all = generate(loaded.model, Array.from({ length: flags.samples }, () => promptIds), {
            maxTokens: flags.maxTokens,
            temperature: flags.temperature,
            topK: flags.topK,
            topP: flags.topP,
            seed: flags.seed ?? g.seed,
          });
          const seconds = (performance.now() - started) / 1000;
          const samples = all.map((ids) => {
            const textIds = ids[ids.length - 1] === loaded.model.config.eosId ? ids.slice(0, -1) : ids;
            const text = tokenizer.decode(textIds);
            const fullText = tokenizer.decode([...promptIds.filter((id) => id !== tokenizer.bosId), ...textIds]);
            return { text, fullText, ids, tokens: ids.length };
          });
          const tokens = samples.reduce((sum, x) => sum + x.tokens, 0);
          ctx.events.log('info', `${tokens} tokens in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(1)} tokens/s)`);
          if (flags.samples === 1) {
            const { text, fullText, ids } = samples[0]!;
            if (g.json) process.stdout.write(`${JSON.stringify({ prompt: flags.prompt, text, fullText, ids, tokens, seconds })}\n`);
            else process.stdout.write(`${fullText}\n`);
          } else if (g.json) {
            process.stdout.write(`${JSON.stringify({ prompt: flags.prompt, samples, tokens, seconds })}\n`);
          } else {
            process.stdout.write(samples.map((x, i) => `--- sample ${i}\n${x.fullText}\n`).join(''));
          }
        } finally {
          loaded.model.dispose();
        }
      } finally {
        ctx.close();
      }
    });
}
