import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContainer, EventBus, Tokens, TopiaryError, type Evaluator } from '@topiary/kernel';
import { ByteTokenizer } from '@topiary/corpus';
import evalPlugin, {
  builtinTasks,
  choiceItem,
  compareMarkdown,
  defaultTaskRegistry,
  defineTask,
  encodeRequest,
  evaluateTask,
  field,
  meanStderr,
  reportToJson,
  reportToMarkdown,
  runEvaluation,
  TaskRegistry,
  type EvalReport,
} from '../src/index.js';
import { logSoftmaxAt, stubModel } from './stub.js';

// Unigram model over bytes: log p(token) is context-free, so a continuation's loglik is a closed-form sum.
const V = 259;
const unigram = Array.from({ length: V }, (_, v) => (v >= 3 + 97 && v <= 3 + 122 ? 2 + ((v * 37) % 11) / 5 : v === 3 + 32 ? 3 : 0));
const model = () => stubModel(V, 64, () => unigram);
const lp = (s: string) => [...Buffer.from(s)].reduce((a, b) => a + logSoftmaxAt(unigram, b + 3), 0);
const tok = new ByteTokenizer();
const dir = mkdtempSync(join(tmpdir(), 'topiary-mc-'));

const toy = defineTask({
  name: 'toy',
  description: 'a toy task',
  dataFile: join(dir, 'toy.jsonl'),
  toItem(doc, line) {
    const choices = field('toy', doc, 'choices', line).strings();
    return choiceItem(`Q: ${field('toy', doc, 'q', line).string()}\nA:`, choices, field('toy', doc, 'label', line).index(choices.length));
  },
});
const docs = [
  { q: 'one', choices: ['zz', 'a'], label: 1 },
  { q: 'two', choices: ['qqqqqqqq', 'k'], label: 0 },
  { q: 'three', choices: ['b', 'c', 'dddd'], label: 2 },
  { q: 'four', choices: ['x y', 'xy'], label: 0 },
  { q: 'five', choices: ['m', 'n'], label: 0 },
];
writeFileSync(join(dir, 'toy.jsonl'), `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);

describe('lm-eval request encoding', () => {
  it('moves trailing context spaces into the continuation and slices whole[len(ctx):]', () => {
    const r = encodeRequest(tok, { context: 'Answer: ', continuation: 'yes' });
    expect(tok.decode(r.context)).toBe('Answer:');
    expect(tok.decode(r.continuation)).toBe(' yes');
    expect(r.context[0]).toBe(1);
    expect(encodeRequest(tok, { context: '', continuation: 'ab' })).toEqual({ context: [1], continuation: [97 + 3, 98 + 3] });
    expect(encodeRequest(tok, { context: 'x', continuation: ' y' }, false).context).toEqual([120 + 3]);
  });
});

describe('multiple choice against closed forms', () => {
  it('acc, acc_norm (by choice characters), sample stderr, per-item predictions', async () => {
    for (const batchSize of [1, 4, 100]) {
      const r = await evaluateTask(model(), tok, toy, { events: new EventBus(), batchSize });
      const preds: number[] = [];
      const predsNorm: number[] = [];
      docs.forEach((d, i) => {
        const ll = d.choices.map((c) => lp(` ${c}`));
        expect(r.items[i]!.logLiks.map((x) => Number(x.toFixed(4)))).toEqual(ll.map((x) => Number(x.toFixed(4))));
        preds.push(ll.indexOf(Math.max(...ll)));
        const norm = ll.map((l, k) => l / d.choices[k]!.length);
        predsNorm.push(norm.indexOf(Math.max(...norm)));
      });
      expect(r.predictions).toEqual(preds);
      expect(r.predictionsNorm).toEqual(predsNorm);
      const acc = preds.filter((p, i) => p === docs[i]!.label).length / docs.length;
      const accNorm = predsNorm.filter((p, i) => p === docs[i]!.label).length / docs.length;
      expect(r.acc).toBeCloseTo(acc, 12);
      expect(r.accNorm).toBeCloseTo(accNorm, 12);
      expect(r.accStderr).toBeCloseTo(Math.sqrt((acc * (1 - acc) * 5) / 4 / 5), 12);
      expect(r.n).toBe(5);
    }
    // The fixture is built so acc and acc_norm disagree somewhere.
    const r = await evaluateTask(model(), tok, toy, { events: new EventBus() });
    expect(r.predictions).not.toEqual(r.predictionsNorm);
  });

  it('limit evaluates the first N items', async () => {
    const r = await evaluateTask(model(), tok, toy, { events: new EventBus(), limit: 2 });
    expect(r.n).toBe(2);
  });

  it('meanStderr is the sample stderr of the mean', () => {
    expect(meanStderr([1, 0, 1, 1])).toEqual({ mean: 0.75, stderr: Math.sqrt(0.25 / 4) });
  });
});

describe('task definitions', () => {
  const registry = defaultTaskRegistry();

  it('knows the MANIFEST tasks; unknown names list the known ones', () => {
    for (const n of ['piqa', 'hellaswag', 'arc-easy', 'arc-challenge', 'winogrande', 'boolq_nopassage', 'openbookqa', 'siqa', 'hellaswag-mini', 'arc-easy-dev-mini']) expect(registry.has(n)).toBe(true);
    // lm-eval's names, the old ones as aliases of the same task
    for (const [n, alias] of [['arc_easy', 'arc-easy'], ['arc_challenge', 'arc-challenge'], ['social_iqa', 'siqa']] as const) expect(registry.get(alias)).toBe(registry.get(n));
    for (const n of ['lambada_openai', 'piqa', 'hellaswag', 'winogrande', 'openbookqa']) expect(registry.get(n).name).toBe(n);
    // boolq: lm-eval's needs passages, which our data lacks → refused with a hint to boolq_nopassage or a file
    const b = (() => {
      try {
        registry.get('boolq');
      } catch (err) {
        return err as TopiaryError;
      }
    })()!;
    expect(b).toMatchObject({ code: 'E_USAGE', where: '--tasks' });
    expect(b.hint).toContain('boolq_nopassage');
    expect(b.hint).toContain('passage');
    const e = (() => {
      try {
        registry.get('mmlu');
      } catch (err) {
        return err as TopiaryError;
      }
    })()!;
    expect(e).toBeInstanceOf(TopiaryError);
    expect(e.code).toBe('E_USAGE');
    expect(e.where).toBe('--tasks');
    expect(e.hint).toContain('known tasks: arc-challenge');
    expect(e.hint).toContain('winogrande');
    expect(() => new TaskRegistry([toy, toy])).toThrow(/already registered/);
  });

  it('builds lm-eval prompts (piqa, winogrande partial evaluation, boolq, hellaswag, arc original schema)', () => {
    const get = (n: string) => registry.get(n);
    expect(get('piqa').toItem({ goal: 'Open a jar', choices: ['twist', 'kick'], label: 0 }, 1)).toEqual({
      requests: [{ context: 'Question: Open a jar\nAnswer:', continuation: ' twist' }, { context: 'Question: Open a jar\nAnswer:', continuation: ' kick' }],
      label: 0,
      normLengths: [5, 4],
    });
    expect(get('winogrande').toItem({ sentence: 'Sarah was better than Maria so _ got the easy cases.', options: ['Sarah', 'Maria'], label: 1 }, 1)).toEqual({
      requests: [
        { context: 'Sarah was better than Maria so Sarah', continuation: ' got the easy cases.' },
        { context: 'Sarah was better than Maria so Maria', continuation: ' got the easy cases.' },
      ],
      label: 1,
      normLengths: [36, 36],
      target: 'got the easy cases.',
    });
    expect(get('boolq_nopassage').toItem({ question: 'is the sky blue', label: true }, 1).requests.map((r) => r.context + r.continuation)).toEqual(['Question: is the sky blue?\nAnswer: no', 'Question: is the sky blue?\nAnswer: yes']);
    expect(get('boolq_nopassage').toItem({ question: 'q', label: false }, 1).label).toBe(0);
    expect(get('hellaswag').toItem({ ctx: 'Cooking: A man [title] cuts.', endings: ['a', 'b  c'], label: 1 }, 1).requests).toEqual([
      { context: 'Cooking: A man. cuts.', continuation: ' a' },
      { context: 'Cooking: A man. cuts.', continuation: ' b c' },
    ]);
    const arc = get('arc-easy-dev-mini').toItem({ question: { stem: 'Why?', choices: [{ text: 'x', label: '1' }, { text: 'y', label: '2' }] }, answerKey: '2' }, 1);
    expect(arc.label).toBe(1);
    expect(arc.requests[0]).toEqual({ context: 'Question: Why?\nAnswer:', continuation: ' x' });
    expect(get('siqa').toItem({ question: 'Ctx. Why?', choices: ['a', 'b', 'c'], label: 2 }, 1).requests[2]).toEqual({ context: 'Q: Ctx. Why?\nA:', continuation: ' c' });
    expect(get('openbookqa').toItem({ question: 'Fog is', choices: ['a', 'b'], label: 0 }, 1).requests[0]).toEqual({ context: 'Fog is', continuation: ' a' });
  });

  it('every shipped task file parses completely', async () => {
    for (const name of ['hellaswag-mini', 'arc-easy-dev-mini']) {
      const r = await evaluateTask(stubModel(V, 1024, () => unigram), tok, registry.get(name), { events: new EventBus(), limit: 3 });
      expect(r.n).toBe(3);
    }
  });

  it('bad task data: malformed JSON lines and wrong fields name the file and line', async () => {
    writeFileSync(join(dir, 'bad.jsonl'), '{"q":"a","choices":["x","y"],"label":0}\n{"q": "b", choices: []}\n');
    const e1 = await evaluateTask(model(), tok, toy, { events: new EventBus() }, { dataFile: join(dir, 'bad.jsonl') }).catch((e: unknown) => e as TopiaryError);
    expect(e1).toMatchObject({ code: 'E_DATA', where: 'line 2', file: join(dir, 'bad.jsonl') });
    expect((e1 as TopiaryError).message).toMatch(/malformed JSON on line 2/);
    writeFileSync(join(dir, 'bad2.jsonl'), '{"q":"a","choices":["x","y"],"label":5}\n');
    const e2 = await evaluateTask(model(), tok, toy, { events: new EventBus() }, { dataFile: join(dir, 'bad2.jsonl') }).catch((e: unknown) => e as TopiaryError);
    expect(e2).toMatchObject({ code: 'E_DATA', file: join(dir, 'bad2.jsonl') });
    expect((e2 as TopiaryError).message).toMatch(/task toy, line 1: field "label" must be an index in \[0, 1\], got 5/);
    const missing = defineTask({ ...toy, name: 'nofile', dataFile: 'nope.jsonl' });
    await expect(evaluateTask(model(), tok, missing, { events: new EventBus() }, { dataDirs: [dir] })).rejects.toMatchObject({ code: 'E_IO', where: '--tasks nofile' });
  });

  it('builtin task names are unique and valid', () => {
    expect(new Set(builtinTasks.map((t) => t.name)).size).toBe(builtinTasks.length);
  });
});

describe('reports', () => {
  it('runEvaluation → JSON of the CLI shape, Markdown, comparison', async () => {
    writeFileSync(join(dir, 'text.txt'), 'abc def ghi jkl mno pqr stu vwx yz '.repeat(8));
    const registry = new TaskRegistry([toy]);
    const a = await runEvaluation(model(), tok, { perplexity: [join(dir, 'text.txt')], tasks: ['toy'], seqLen: 32, registry, model: 'dense' }, { events: new EventBus() });
    const json = reportToJson(a) as unknown as { perplexity: Record<string, { ppl: number; tokens: number }>; tasks: Record<string, { acc: number; acc_norm: number; n: number }> };
    expect(Object.keys(json.perplexity)).toEqual([join(dir, 'text.txt')]);
    expect(json.perplexity[join(dir, 'text.txt')]!.tokens).toBe(Math.floor(281 / 32) * 31);
    expect(json.tasks.toy).toMatchObject({ acc: a.tasks.toy!.acc, acc_norm: a.tasks.toy!.accNorm, n: 5 });
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
    const md = reportToMarkdown(a);
    expect(md).toContain('| toy | 5 |');
    const b: EvalReport = { ...a, model: 'pruned', perplexity: { [join(dir, 'text.txt')]: { ...a.perplexity[join(dir, 'text.txt')]!, ppl: a.perplexity[join(dir, 'text.txt')]!.ppl + 1 } } };
    const cmp = compareMarkdown([a, b]);
    expect(cmp.split('\n')[0]).toBe('| metric | dense | pruned | Δ (last − first) |');
    expect(cmp).toContain('+1.000');
    await expect(runEvaluation(model(), tok, { tasks: ['toy', 'nope'], registry }, { events: new EventBus() })).rejects.toMatchObject({ code: 'E_USAGE', hint: 'known tasks: toy' });
  });

  it('the plugin registers the two evaluators', async () => {
    const c = createContainer();
    evalPlugin.register(c, {});
    const evaluators = c.resolveAll<Evaluator>(Tokens.Evaluator);
    expect(evaluators.map((e) => e.name)).toEqual(['perplexity', 'multiple-choice']);
  });
});
