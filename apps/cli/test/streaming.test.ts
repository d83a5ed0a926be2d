/**
 * Issue 19 on the command line: `topiary prune` streams block-by-block methods by default. The streamed and the
 * in-memory (`--in-memory`) paths must give bit-identical weights, masks and perplexity — on stories260K, and on a
 * random 4-block model stored in bf16 across shards; a run stopped half-way resumes to the same bytes.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parameterShapes, readHfConfig, writeHeaderOnlySafetensors, PROGRESS_FILE } from '@topiary/model-llama';
import { runCli } from './helpers.js';
import { STORIES, streamingFixtures } from './streaming-fixtures.js';

const { work, text: TEXT, randomBf16Model } = streamingFixtures('topiary-stream-cli-');

async function prune(model: string, out: string, method: string, extra: string[] = []) {
  const r = await runCli([
    '--json', '--out', out, 'prune', '--model', model, '--method', method, '--sparsity', '0.5',
    '--calibration', TEXT, '--samples', '8', '--seqlen', '64', '--eval', TEXT, '--eval-seqlen', '64', '--eval-limit', '6', ...extra,
  ]);
  return { ...r, json: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

const bytes = (dir: string) => readFileSync(join(dir, 'model.safetensors'));

describe('streamed prune = in-memory prune, bit for bit', () => {
  for (const [name, model, methods] of [
    ['stories260K (f32)', () => STORIES, ['wanda', 'sparsegpt']],
    ['random 4-block model, bf16 shards', randomBf16Model, ['wanda', 'magnitude']],
  ] as const) {
    for (const method of methods) {
      it(`${name}, ${method}: same weights (masks are their zeros), same perplexity before and after`, async () => {
        const input = model();
        const a = await prune(input, join(work, `${method}-${name.length}-streamed`), method);
        const b = await prune(input, join(work, `${method}-${name.length}-memory`), method, ['--in-memory']);
        expect(a.code, a.stderr).toBe(0);
        expect(b.code, b.stderr).toBe(0);
        expect(a.json!.streamed).toBe(true);
        expect(b.json!.streamed).toBe(false);
        expect(bytes(join(work, `${method}-${name.length}-streamed`)).equals(bytes(join(work, `${method}-${name.length}-memory`)))).toBe(true);
        expect(a.json!.perplexity).toEqual(b.json!.perplexity);
        expect(a.json!.layers).toEqual(b.json!.layers);
        const config = JSON.parse(readFileSync(join(work, `${method}-${name.length}-streamed`, 'config.json'), 'utf8'));
        expect(config.torch_dtype).toBe(name.includes('bf16') ? 'bfloat16' : 'float32'); // the input's dtype
      });
    }
  }
});

describe('streamed prune under a tiny memory budget', () => {
  it('calibration hidden states and modified blocks spill to --spill-dir: the same bytes as in memory, the folder left clean', async () => {
    const spill = join(work, 'spill');
    const a = await prune(STORIES, join(work, 'tiny-budget'), 'sparsegpt', ['--max-memory', '0.00005', '--spill-dir', spill]);
    const b = await prune(STORIES, join(work, 'tiny-budget-memory'), 'sparsegpt', ['--in-memory']);
    expect(a.code, a.stderr).toBe(0);
    expect(bytes(join(work, 'tiny-budget')).equals(bytes(join(work, 'tiny-budget-memory')))).toBe(true);
    expect(a.json!.perplexity).toEqual(b.json!.perplexity);
    expect(readdirSync(spill)).toEqual([]);
  });
});

describe('interrupted streamed prune', () => {
  // SparseGPT updates weights: a resumed run reads the finished blocks back as stored, so bytes match when the output
  // dtype stores them exactly (f32 here; Wanda's and magnitude's kept weights are the input's own values in any dtype)
  it('a write that fails half-way is E_IO naming the file; finished blocks stay; --resume finishes to the same bytes', async () => {
    const input = randomBf16Model();
    const whole = join(work, 'resume-whole');
    expect((await prune(input, whole, 'sparsegpt', ['--dtype', 'f32'])).code).toBe(0);
    const out = join(work, 'resume-out');
    // block 2's shard cannot be written (a folder stands where the file goes): as a full disk would fail it
    const blocker = join(out, 'model-00003-of-00005.safetensors');
    mkdirSync(join(blocker, 'x'), { recursive: true });
    const failed = await prune(input, out, 'sparsegpt', ['--dtype', 'f32']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('model-00003-of-00005.safetensors');
    expect(existsSync(join(out, PROGRESS_FILE))).toBe(true);
    expect(existsSync(join(out, 'config.json'))).toBe(false); // never looks like a model
    expect(existsSync(join(out, 'model-00002-of-00005.safetensors'))).toBe(true);
    rmSync(blocker, { recursive: true });
    const again = await prune(input, out, 'sparsegpt', ['--dtype', 'f32']);
    expect(again.code).toBe(2); // without --resume: refused, names the flag
    expect(again.stderr).toContain('--resume');
    const resumed = await prune(input, out, 'sparsegpt', ['--dtype', 'f32', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json!.resumedBlocks).toBe(2);
    expect(bytes(out).equals(bytes(whole))).toBe(true);
    expect(existsSync(join(out, PROGRESS_FILE))).toBe(false);
  });

  it('another job cannot resume into the folder', async () => {
    const input = randomBf16Model();
    const out = join(work, 'resume-other');
    const blocker = join(out, 'model-00002-of-00005.safetensors');
    mkdirSync(join(blocker, 'x'), { recursive: true });
    expect((await prune(input, out, 'wanda')).code).not.toBe(0);
    rmSync(blocker, { recursive: true });
    const other = await prune(input, out, 'magnitude', ['--resume']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('another run');
  });
});

describe('streamed prune: bad input', () => {
  it('output folder = input folder, --resume with --in-memory, an unwritable spill folder: refused before any work', async () => {
    const input = randomBf16Model();
    const same = await prune(input, input, 'wanda');
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('--out');
    const mem = await prune(input, join(work, 'x1'), 'wanda', ['--in-memory', '--resume']);
    expect(mem.code).toBe(2);
    expect(mem.stderr).toContain('--resume');
    const file = join(work, 'plain-file');
    writeFileSync(file, 'x');
    const spill = await prune(input, join(work, 'x2'), 'wanda', ['--spill-dir', join(file, 'sub')]);
    expect(spill.code).not.toBe(0);
    expect(spill.stderr).toContain(join(file, 'sub'));
    expect(existsSync(join(work, 'x2', 'config.json'))).toBe(false);
  });
});

describe('inspect reads headers only', () => {
  it('a Llama-2-7B-shaped checkpoint (a sparse 13.5 GB file: no weight bytes on disk) is described from its headers', async () => {
    const dir = join(work, 'llama2-7b-shape');
    mkdirSync(dir, { recursive: true });
    const hf = {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32,
      num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
      rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(hf));
    // a sparse 13.5 GB file: the header names every tensor, the weights are holes
    writeHeaderOnlySafetensors(join(dir, 'model.safetensors'), [...parameterShapes(readHfConfig(dir))].map(([name, shape]) => ({ name, shape })));
    const r = await runCli(['--json', 'inspect', '--model', dir]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.parameters.total).toBe(6_738_415_616);
    expect(info.dtype).toBe('bfloat16');
    expect(info.layers).toHaveLength(32);
    expect(info.layers[0].hiddenDim).toBe(11008);
  });
});
