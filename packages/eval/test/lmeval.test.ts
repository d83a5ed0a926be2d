/**
 * lm-eval-harness features against closed forms (stub models): task files by path in the public datasets' schemas,
 * few-shot contexts as lm-eval's sampler draws them, lambada-style loglikelihood tasks (greedy acc, perplexity),
 * lm-eval's results JSON and logged samples, word/byte perplexity and bits per byte.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventBus, TopiaryError } from '@topiary/kernel';
import { ByteTokenizer } from '@topiary/corpus';
import {
  bootstrapStderr,
  countBytes,
  countWords,
  defaultTaskRegistry,
  defineTask,
  evaluatePerplexity,
  evaluateTask,
  loadTaskItems,
  reportToLmEval,
  resolveTasks,
  runEvaluation,
  splitTaskList,
  taskFromFile,
  taskSamples,
  withFewshot,
  type McItem,
} from '../src/index.js';
import { logSoftmaxAt, stubModel } from './stub.js';

const V = 259;
const unigram = Array.from({ length: V }, (_, v) => (v >= 3 + 97 && v <= 3 + 122 ? 2 + ((v * 37) % 11) / 5 : v === 3 + 32 ? 3 : 0));
const model = () => stubModel(V, 4096, () => unigram);
const lp = (s: string) => [...Buffer.from(s)].reduce((a, b) => a + logSoftmaxAt(unigram, b + 3), 0);
const tok = new ByteTokenizer();
const dir = mkdtempSync(join(tmpdir(), 'topiary-lmeval-'));
const fixtures = join(import.meta.dirname, 'fixtures');
const write = (name: string, docs: object[]) => {
  writeFileSync(join(dir, name), `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  return join(dir, name);
};
const texts = (item: McItem) => item.requests.map((r) => [r.context, r.continuation]);

describe('task names', () => {
  it('comma lists, aliases to lm-eval names, files by path; duplicates once', async () => {
    expect(splitTaskList(['piqa,hellaswag', ' arc_easy ', 'piqa'])).toEqual(['piqa', 'hellaswag', 'arc_easy']);
    const tasks = await resolveTasks(['siqa,arc-easy', 'social_iqa', join(fixtures, 'piqa_hf.jsonl')]);
    expect(tasks.map((t) => t.name)).toEqual(['social_iqa', 'arc_easy', 'piqa_hf']);
    await expect(resolveTasks(['boolq'])).rejects.toMatchObject({ code: 'E_USAGE', where: '--tasks' });
  });
});

describe('task files in the datasets’ own schemas (lm-eval prompts)', () => {
  it('PIQA {goal, sol1, sol2, label}', async () => {
    const t = await taskFromFile(join(fixtures, 'piqa_hf.jsonl'));
    expect(t.schema.lmEvalTask).toBe('piqa');
    const { items, original } = await loadTaskItems(t, 2);
    expect(original).toBe(8);
    expect(texts(items[0]!)).toEqual([
      ['Question: Keep a cut apple from turning brown\nAnswer:', ' Brush the cut sides with lemon juice.'],
      ['Question: Keep a cut apple from turning brown\nAnswer:', ' Brush the cut sides with warm milk.'],
    ]);
    expect(items[1]!.label).toBe(1);
  });

  it('HellaSwag {activity_label, ctx_a, ctx_b, endings, label "1"}: preprocess, ctx_b.capitalize()', async () => {
    const t = await taskFromFile(join(fixtures, 'hellaswag_hf.jsonl'));
    const { items } = await loadTaskItems(t);
    expect(items[0]!.requests[0]).toEqual({ context: 'Baking cookies: A girl puts flour in a bowl. She', continuation: ' adds two eggs and stirs. the dough.' });
    expect(items[0]!.requests[3]!.continuation).toBe(' sings to the moon.');
    // Python's capitalize lower-cases the rest: "THEY" → "They"
    expect(items[1]!.requests[0]!.context).toBe('Walking the dog: A boy puts a leash on his dog. They');
    expect(items[1]!.label).toBe(1);
  });

  it('WinoGrande {sentence, option1, option2, answer "1"/"2"}: partial scoring, acc only', async () => {
    const t = await taskFromFile(join(fixtures, 'winogrande_hf.jsonl'));
    expect(t.metrics).toEqual(['acc']);
    const { items } = await loadTaskItems(t, 1);
    expect(items[0]).toMatchObject({
      requests: [
        { context: 'The cat chased the mouse until the cat', continuation: ' was too tired to run.' },
        { context: 'The cat chased the mouse until the mouse', continuation: ' was too tired to run.' },
      ],
      label: 1,
    });
  });

  it('ARC (HF and AI2), OpenBookQA, Social IQa, BoolQ with passage, ours, LAMBADA {text}', async () => {
    const cases: [object, string, string[][], number][] = [
      [{ id: 'a', question: 'Why?', choices: { text: ['x', 'y', 'z'], label: ['1', '2', '3'] }, answerKey: '3' }, 'arc_easy', [['Question: Why?\nAnswer:', ' x']], 2],
      [{ question: { stem: 'Why?', choices: [{ text: 'x', label: 'A' }, { text: 'y', label: 'B' }] }, answerKey: 'B' }, 'arc_easy', [['Question: Why?\nAnswer:', ' x']], 1],
      [{ id: 'o', question_stem: 'Fog is', choices: { text: ['wet', 'dry'], label: ['A', 'B'] }, answerKey: ' A' }, 'openbookqa', [['Fog is', ' wet']], 0],
      [{ context: 'Ann lost.', question: 'How does Ann feel?', answerA: 'sad', answerB: 'glad', answerC: 'bored', label: '1' }, 'social_iqa', [['Q: Ann lost. How does Ann feel?\nA:', ' sad']], 0],
      [{ question: 'is the sky blue', passage: 'The sky is blue.', idx: 0, label: 1 }, 'boolq', [['The sky is blue.\nQuestion: is the sky blue?\nAnswer:', ' no']], 1],
      [{ context: 'Q: 2+2?\nA:', choices: ['4', '5'], label: 0 }, 'multiple_choice', [['Q: 2+2?\nA:', ' 4']], 0],
      [{ text: 'the cat sat on the mat' }, 'lambada_openai', [['the cat sat on the', ' mat']], 0],
    ];
    for (const [i, [doc, lmTask, first, label]] of cases.entries()) {
      const t = await taskFromFile(write(`case${i}.jsonl`, [doc]));
      expect(t.schema.lmEvalTask, JSON.stringify(doc)).toBe(lmTask);
      const { items } = await loadTaskItems(t);
      expect(texts(items[0]!).slice(0, 1)).toEqual(first);
      expect(items[0]!.label).toBe(label);
    }
  });

  it('a file matching no schema is refused, naming what each schema lacks; bad records name the line', async () => {
    const e = (await taskFromFile(write('odd.jsonl', [{ prompt: 'x', answer: 'y' }])).catch((err: unknown) => err)) as TopiaryError;
    expect(e).toBeInstanceOf(TopiaryError);
    expect(e).toMatchObject({ code: 'E_DATA', where: '--tasks' });
    expect(e.message).toContain('its first record has the fields prompt, answer');
    expect(e.hint).toContain('PIQA (HF piqa) needs goal, sol1, sol2, label (lacks goal, sol1, sol2, label)');
    expect(e.hint).toContain('WinoGrande (HF allenai/winogrande) needs sentence, option1, option2, answer (lacks sentence, option1, option2)');
    const t = await taskFromFile(write('bad-piqa.jsonl', [{ goal: 'g', sol1: 'a', sol2: 'b', label: 0 }, { goal: 'g', sol1: 'a', sol2: 'b', label: 2 }]));
    await expect(loadTaskItems(t)).rejects.toMatchObject({ code: 'E_DATA', where: 'line 2' });
    await expect(taskFromFile(join(dir, 'missing.jsonl'))).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('few-shot (lm-eval ContextSampler, random.Random(seed))', () => {
  const docs = Array.from({ length: 10 }, (_, i) => ({ context: `Q${i}:`, choices: ['a', 'b'], label: i % 2 }));
  it('draws n + 1, drops the evaluated doc, keeps n; examples joined by "\\n\\n"; one generator in document order', async () => {
    const t = await taskFromFile(write('fs.jsonl', docs));
    const { items, pool } = await loadTaskItems(t, 4, { numFewshot: 2 });
    const shots = withFewshot(t, items, pool!, 2, 1234);
    // python3: r = random.Random(1234); [[x for x in r.sample(range(10), 3) if x != d][:2] for d in range(4)]
    const expected = [[7, 1], [0, 9], [1, 5], [0, 9]];
    shots.forEach((item, d) => {
      const prefix = expected[d]!.map((k) => `Q${k}: ${['a', 'b'][k % 2]}\n\n`).join('');
      expect(item.requests.map((r) => r.context)).toEqual([`${prefix}Q${d}:`, `${prefix}Q${d}:`]);
    });
  });

  it('lambada-style tasks draw n without removing the evaluated doc (lm-eval: test split as pool), double space before the target', async () => {
    const lam = defineTask({ ...defaultTaskRegistry().get('lambada_openai'), dataFile: write('lam.jsonl', Array.from({ length: 10 }, (_, i) => ({ text: `story ${i} ends w${i}` }))) });
    const { items, pool } = await loadTaskItems(lam, 3, { numFewshot: 2 });
    const shots = withFewshot(lam, items, pool!, 2, 7);
    // python3: r = random.Random(7); [r.sample(range(10), 2) for d in range(3)]
    [[5, 2], [6, 0], [1, 8]].forEach((ks, d) => {
      expect(shots[d]!.requests[0]!.context).toBe(`${ks.map((k) => `story ${k} ends  w${k}\n\n`).join('')}story ${d} ends`);
      expect(shots[d]!.requests[0]!.continuation).toBe(` w${d}`);
    });
  });

  it('evaluateTask scores the few-shot contexts; too few documents is a usage error', async () => {
    const t = await taskFromFile(write('fs2.jsonl', docs));
    const r = await evaluateTask(model(), tok, t, { events: new EventBus(), limit: 3 }, { numFewshot: 2 });
    // a unigram model: the context does not change a continuation's loglik
    expect(r.items[0]!.logLiks.map((x) => x.toFixed(6))).toEqual([lp(' a').toFixed(6), lp(' b').toFixed(6)]);
    expect(r.items[0]!.requests[0]!.context).toBe('Q7: b\n\nQ1: b\n\nQ0:');
    expect(r).toMatchObject({ numFewshot: 2, fewshotSeed: 1234, n: 3, original: 10 });
    await expect(evaluateTask(model(), tok, t, { events: new EventBus() }, { numFewshot: 10 })).rejects.toMatchObject({ code: 'E_USAGE', where: '--num-fewshot' });
  });
});

describe('loglikelihood tasks (lambada_openai)', () => {
  it('acc = the target is the greedy decode; perplexity = exp(−mean loglik); bootstrap stderr as lm-eval', async () => {
    // the unigram argmax is the byte with the largest logit; build targets that are / are not greedy
    const best = String.fromCharCode(unigram.indexOf(Math.max(...unigram)) - 3);
    const lam = defineTask({ ...defaultTaskRegistry().get('lambada_openai'), dataFile: write('lam2.jsonl', [{ text: `a b ${best}${best}` }, { text: 'a b q' }, { text: `x ${best}` }]) });
    const r = await evaluateTask(model(), tok, lam, { events: new EventBus() }, { bootstrapIters: 0 });
    // " " is not the argmax, so a target " word" is never greedy under a unigram model whose argmax is a letter
    expect(r.items.map((i) => i.greedy[0])).toEqual([false, false, false]);
    expect(r.acc).toBe(0);
    const lls = [lp(` ${best}${best}`), lp(' q'), lp(` ${best}`)];
    expect(Math.abs(r.perplexity! / Math.exp(-(lls[0]! + lls[1]! + lls[2]!) / 3) - 1)).toBeLessThan(1e-5); // float32 logits
    expect(r.metrics).toEqual(['perplexity', 'acc']);
    // a model whose argmax is " " then the letter: the target " x" is greedy
    const spaceFirst = stubModel(V, 64, (row, p) => Array.from({ length: V }, (_, v) => (v === (row[p] === 3 + 32 ? 3 + 120 : 3 + 32) ? 5 : 0)));
    const lam3 = defineTask({ ...lam, dataFile: write('lam3.jsonl', [{ text: 'a x' }, { text: 'a y' }]) });
    const r3 = await evaluateTask(spaceFirst, tok, lam3, { events: new EventBus() }, { bootstrapIters: 0 });
    expect(r3.items.map((i) => i.greedy[0])).toEqual([true, false]);
    expect(r3.acc).toBe(0.5);
  });

  it('bootstrapStderr follows lm-eval (python: random.Random(i).choices per chunk)', () => {
    // python3: see bench/reference/lmeval_reference.py bootstrap_stderr(lambda xs: math.exp(-(sum(xs)/len(xs))), [-1,-2,-3.5,-0.25], 2000)
    const xs = [-1, -2, -3.5, -0.25];
    const got = bootstrapStderr((a) => Math.exp(-(a.reduce((s, x) => s + x, 0) / a.length)), xs, 2000);
    expect(got).toBeCloseTo(BOOTSTRAP_4, 12);
  });
});

describe('lm-eval results JSON and samples', () => {
  it('results.<task>["acc,none"], stderr, n-samples, configs, versions, n-shot, config.model_args; samples with logliks', async () => {
    const piqa = await taskFromFile(join(fixtures, 'piqa_hf.jsonl'));
    const wino = await taskFromFile(join(fixtures, 'winogrande_hf.jsonl'));
    const { TaskRegistry } = await import('../src/index.js');
    writeFileSync(join(dir, 'text.txt'), 'abc def ghi jkl mno pqr stu vwx yz '.repeat(8));
    const report = await runEvaluation(model(), tok, { tasks: ['piqa_hf', 'winogrande_hf'], perplexity: [join(dir, 'text.txt')], seqLen: 32, registry: new TaskRegistry([piqa, wino]), task: { numFewshot: 1 } }, { events: new EventBus(), limit: 3 });
    const j = reportToLmEval(report, { modelArgs: 'pretrained=m', limit: 3 }) as Record<string, any>;
    expect(j.results.piqa_hf).toEqual({
      alias: 'piqa_hf',
      'acc,none': report.tasks.piqa_hf!.acc,
      'acc_stderr,none': report.tasks.piqa_hf!.accStderr,
      'acc_norm,none': report.tasks.piqa_hf!.accNorm,
      'acc_norm_stderr,none': report.tasks.piqa_hf!.accNormStderr,
    });
    expect(Object.keys(j.results.winogrande_hf)).toEqual(['alias', 'acc,none', 'acc_stderr,none']);
    expect(j['n-samples'].piqa_hf).toEqual({ original: 8, effective: 3 });
    expect(j['n-shot']).toMatchObject({ piqa_hf: 1, winogrande_hf: 1 });
    expect(j.versions.piqa_hf).toBe(1);
    expect(j.configs.piqa_hf).toMatchObject({ task: 'piqa_hf', output_type: 'multiple_choice', doc_to_text: 'Question: {{goal}}\nAnswer:', target_delimiter: ' ', fewshot_delimiter: '\n\n', num_fewshot: 1 });
    expect(j.config).toMatchObject({ model: 'topiary', model_args: 'pretrained=m', limit: 3, fewshot_seed: 1234 });
    const ppl = j.results[join(dir, 'text.txt')];
    expect(ppl['word_perplexity,none']).toBeGreaterThan(1);
    expect(ppl['bits_per_byte,none']).toBeCloseTo(Math.log(ppl['byte_perplexity,none']) / Math.LN2, 12);
    const samples = taskSamples(report.tasks.piqa_hf!);
    expect(samples).toHaveLength(3);
    expect(samples[0]).toMatchObject({ doc_id: 0, target: 0, filter: 'none', metrics: ['acc', 'acc_norm'] });
    expect((samples[0]!.filtered_resps as [number, boolean][]).map((r) => r[0])).toEqual(report.tasks.piqa_hf!.items[0]!.logLiks);
    expect((samples[0]!.filtered_resps as [number, boolean][])[0]![0]).not.toBe(0);
    expect((samples[0]!.arguments as string[][])[0]![0]).toContain('\n\nQuestion: Keep a cut apple');
  });
});

describe('word and byte perplexity (lm-eval definitions)', () => {
  it('counts words as len(re.split(r"\\s+", text)) and bytes as UTF-8; metrics from the NLL sum', async () => {
    expect(countWords('Hello  wörld\n again ')).toBe(4); // python3: len(re.split(r'\s+', 'Hello  wörld\n again ')) == 4
    expect(countBytes('Hello  wörld\n again ')).toBe(21);
    const text = 'abc def ghi jkl mno pqr stu vwx yz '.repeat(8);
    writeFileSync(join(dir, 'wb.txt'), text);
    for (const [bos, stride] of [[false, undefined], [true, 16]] as const) {
      const r = await evaluatePerplexity(model(), tok, { file: join(dir, 'wb.txt'), seqLen: 32, stride, bos }, { events: new EventBus() });
      expect(r.nllSum).toBeCloseTo(r.nll * r.tokens, 6);
      expect(r.words).toBe(73);
      expect(r.bytes).toBe(280);
      expect(r.wordPerplexity).toBeCloseTo(Math.exp(r.nllSum / 73), 6);
      expect(r.bytePerplexity).toBeCloseTo(Math.exp(r.nllSum / 280), 6);
      expect(r.bitsPerByte).toBeCloseTo(r.nllSum / 280 / Math.LN2, 9);
      // every text token scored only with a BOS in front and a stride (lm-eval's rolling loglikelihood scores all)
      expect(r.allTokensScored).toBe(bos);
    }
  });
});

const BOOTSTRAP_4 = 4.367668275382715; // CPython 3.11, printed by the bootstrap_stderr of bench/reference/lmeval_reference.py
