/**
 * Zero-shot multiple-choice tasks in the lm-eval-harness format. A task is a small object: its name, its data file
 * (JSON lines), and `toItem`, which turns one record into requests `(context, continuation)` — one per choice — the
 * index of the right one, and the character lengths `acc_norm` divides by. Users add tasks the same way:
 * `registry.register(defineTask({...}))`.
 *
 * Prompts follow lm-eval-harness's task configs (target delimiter " "):
 * piqa "Question: {goal}\nAnswer:" → " {choice}"; hellaswag "{ctx}" → " {ending}" (lm-eval's preprocess applied);
 * arc-* "Question: {question}\nAnswer:" → " {choice}"; openbookqa "{question}" → " {choice}";
 * siqa "Q: {question}\nA:" → " {choice}"; boolq (no passage) "Question: {question}?\nAnswer:" → " no" | " yes";
 * winogrande, partial evaluation: context = sentence before "_" with the option substituted, continuation =
 * " " + the text after "_" (the same continuation for both options, so acc_norm = acc).
 */
import { TopiaryError } from '@topiary/kernel';

export interface McRequest {
  context: string;
  continuation: string;
}

export interface McItem {
  requests: McRequest[];
  /** Index of the right choice (0 for a loglikelihood task's single request). */
  label: number;
  /** Characters `acc_norm` divides each log-likelihood by (lm-eval: `len(choice)` of `doc_to_choice`). */
  normLengths: number[];
  /**
   * This document written as a few-shot example, as lm-eval's sampler writes it (lm_eval/api/samplers.py v0.4.8
   * `get_context`, lines 95-120): `doc_to_text` (or the gold choice for winogrande's multiple inputs) + the target
   * delimiter " " + the gold target. Default: the gold request's context + continuation.
   */
  fewshotExample?: string;
  /** lm-eval's `doc_to_target` of this document (for --log-samples). */
  target?: string | number;
}

/**
 * lm-eval's task output types we score: `multiple_choice` (one request per choice; acc / acc_norm) and
 * `loglikelihood` (one request; acc = the continuation is the greedy decode, perplexity = exp(−mean loglik)).
 */
export type OutputType = 'multiple_choice' | 'loglikelihood';
export type TaskMetric = 'acc' | 'acc_norm' | 'perplexity';

/** The lm-eval task config a task follows, for the `configs` of results.json (strings as in the YAML). */
export interface LmEvalConfig {
  /** Where in lm-evaluation-harness the task is defined. */
  yaml?: string;
  doc_to_text: string;
  doc_to_target: string;
  doc_to_choice?: string;
  version: number;
}

export interface MultipleChoiceTask {
  name: string;
  description: string;
  /** File name looked up in the eval data folders (see `evalDataDirs`), or an absolute path. */
  dataFile: string;
  /** Where the data comes from and its license (shown by `describe`). */
  source?: string;
  /** Other names `--tasks` accepts for this task (the names before lm-eval's were adopted). */
  aliases?: readonly string[];
  /** Default `multiple_choice`. */
  output?: OutputType;
  /** Metrics reported, as in the task's lm-eval `metric_list`. Default acc, acc_norm (loglikelihood: perplexity, acc). */
  metrics?: readonly TaskMetric[];
  /**
   * Few-shot examples are drawn from the evaluated file itself (we have no train splits). When true (default)
   * lm-eval's rule for a few-shot split equal to the evaluated split applies: draw n + 1, drop the evaluated
   * document, keep n (samplers.py v0.4.8 lines 81-92). lambada_openai: false — lm-eval's fewshot_docs falls back to
   * the test split and draws n without removal (task.py v0.4.8 `Task.fewshot_docs`, lines 317-331, and
   * `fewshot_split == test_split` is None == "test", false).
   */
  fewshotExcludesEval?: boolean;
  lmEval?: LmEvalConfig;
  /** Turn one JSON record into an item; throw `taskDataError` for records that do not fit. */
  toItem(doc: Record<string, unknown>, line: number): McItem;
}

export function defineTask(task: MultipleChoiceTask): MultipleChoiceTask {
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(task.name)) throw new TopiaryError('E_PLUGIN_INVALID', `task name "${task.name}" must be lowercase letters, digits, dots, dashes and underscores`);
  return Object.freeze({ ...task });
}

export function taskDataError(task: string, line: number, message: string): TopiaryError {
  return new TopiaryError('E_DATA', `task ${task}, line ${line}: ${message}`, { where: `line ${line}` });
}

/** Field readers that name the task, line and field on failure. */
export function field(task: string, doc: Record<string, unknown>, key: string, line: number) {
  const v = doc[key];
  return {
    string(): string {
      if (typeof v !== 'string') throw taskDataError(task, line, `field "${key}" must be a string`);
      return v;
    },
    strings(): string[] {
      if (!Array.isArray(v) || v.length < 2 || !v.every((x) => typeof x === 'string')) throw taskDataError(task, line, `field "${key}" must be a list of at least 2 strings`);
      return v as string[];
    },
    index(count: number): number {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= count) throw taskDataError(task, line, `field "${key}" must be an index in [0, ${count - 1}], got ${JSON.stringify(v)}`);
      return v;
    },
    boolean(): boolean {
      if (typeof v !== 'boolean') throw taskDataError(task, line, `field "${key}" must be true or false`);
      return v;
    },
  };
}

/** The common shape: one context, choices appended after the delimiter, acc_norm by choice length. */
export function choiceItem(context: string, choices: readonly string[], label: number, delimiter = ' '): McItem {
  return {
    requests: choices.map((c) => ({ context, continuation: `${delimiter}${c}` })),
    label,
    normLengths: choices.map((c) => c.length),
  };
}

/** lm-eval's hellaswag preprocess. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replace(/ \[title\]/g, '. ').replace(/\[.*?\]/g, '').replace(/ {2}/g, ' ');
}

const questionChoices = (name: string, prompt: (q: string) => string) => (doc: Record<string, unknown>, line: number): McItem => {
  const choices = field(name, doc, 'choices', line).strings();
  return choiceItem(prompt(field(name, doc, 'question', line).string()), choices, field(name, doc, 'label', line).index(choices.length));
};

/** The AI2 ARC original schema {question:{stem, choices:[{text,label}]}, answerKey}. */
const arcOriginal = (name: string) => (doc: Record<string, unknown>, line: number): McItem => {
  const q = doc.question as { stem?: unknown; choices?: unknown } | undefined;
  if (typeof q !== 'object' || q === null || typeof q.stem !== 'string' || !Array.isArray(q.choices)) {
    throw taskDataError(name, line, 'expected {question: {stem, choices: [{text, label}]}, answerKey}');
  }
  const choices = q.choices as { text?: unknown; label?: unknown }[];
  if (!choices.every((c) => typeof c === 'object' && c !== null)) throw taskDataError(name, line, 'each of question.choices must be an object {text, label}');
  const label = choices.findIndex((c) => c.label === doc.answerKey);
  if (label < 0 || !choices.every((c) => typeof c.text === 'string')) throw taskDataError(name, line, `answerKey ${JSON.stringify(doc.answerKey)} is not one of the choice labels`);
  return choiceItem(`Question: ${q.stem}\nAnswer:`, choices.map((c) => c.text as string), label);
};

const licenses = {
  piqa: 'PIQA validation (1838) via LLM-Adapters files; dataset license AFL-3.0',
  hellaswag: 'HellaSwag validation (10042) from klosax/hellaswag_text_data (MIT); dataset MIT',
  arc: 'AI2 ARC via LLM-Adapters files; dataset CC BY-SA 4.0',
  arcDev: 'AI2 ARC dev from raybears/cot-transparency (MIT); dataset CC BY-SA 4.0',
  winogrande: 'WinoGrande-xl dev (1267) via LLM-Adapters files; dataset CC-BY',
  boolq: 'BoolQ dev (3270) WITHOUT passages, via LLM-Adapters files; dataset CC BY-SA 3.0',
  obqa: 'OpenBookQA test (500) via LLM-Adapters files; dataset Apache-2.0',
  siqa: 'Social IQa dev (1954) via LLM-Adapters files; dataset CC-BY',
  lambada: "LAMBADA (OpenAI variant) test (5153), the file lm-eval pins (same sha256) via Victorwz/VaLM; dataset CC BY 4.0",
};

/** lm-evaluation-harness task configs (lm_eval/tasks/…, as of v0.4.8 and unchanged on main @4e7e0d47). */
export const lmEvalConfigs = {
  arc: { yaml: 'lm_eval/tasks/arc/arc_easy.yaml lines 10-12', doc_to_text: 'Question: {{question}}\nAnswer:', doc_to_target: '{{choices.label.index(answerKey)}}', doc_to_choice: '{{choices.text}}', version: 1.0 },
  piqa: { yaml: 'lm_eval/tasks/piqa/piqa.yaml lines 8-10', doc_to_text: 'Question: {{goal}}\nAnswer:', doc_to_target: 'label', doc_to_choice: '{{[sol1, sol2]}}', version: 1.0 },
  hellaswag: { yaml: 'lm_eval/tasks/hellaswag/hellaswag.yaml lines 10-13, utils.py lines 6-25', doc_to_text: '{{query}}', doc_to_target: '{{label}}', doc_to_choice: 'choices', version: 1.0 },
  winogrande: { yaml: 'lm_eval/tasks/winogrande/default.yaml lines 7-9, preprocess_winogrande.py', doc_to_text: 'preprocess_winogrande.doc_to_text', doc_to_target: 'preprocess_winogrande.doc_to_target', doc_to_choice: 'preprocess_winogrande.doc_to_choice', version: 1.0 },
  openbookqa: { yaml: 'lm_eval/tasks/openbookqa/openbookqa.yaml lines 8-10', doc_to_text: 'question_stem', doc_to_target: '{{choices.label.index(answerKey.lstrip())}}', doc_to_choice: '{{choices.text}}', version: 1.0 },
  social_iqa: { yaml: 'lm_eval/tasks/siqa/siqa.yaml lines 7-10', doc_to_text: 'Q: {{context}} {{question}}\nA:', doc_to_target: '{{ (label|int) - 1 }}', doc_to_choice: '{{[answerA, answerB, answerC]}}', version: 0.0 },
  boolq: { yaml: 'lm_eval/tasks/super_glue/boolq/default.yaml', doc_to_text: '{{passage}}\nQuestion: {{question}}?\nAnswer:', doc_to_target: 'label', doc_to_choice: "['no', 'yes']", version: 2.0 },
  boolq_nopassage: { yaml: 'lm_eval/tasks/super_glue/boolq/default.yaml without {{passage}}\\n (our data has no passages)', doc_to_text: 'Question: {{question}}?\nAnswer:', doc_to_target: 'label', doc_to_choice: "['no', 'yes']", version: 2.0 },
  lambada_openai: { yaml: 'lm_eval/tasks/lambada/lambada_openai.yaml lines 6-9', doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}", doc_to_target: "{{' '+text.split(' ')[-1]}}", version: 1.0 },
} satisfies Record<string, LmEvalConfig>;

/**
 * WinoGrande, partial evaluation as lm-eval does it (lm_eval/tasks/winogrande/preprocess_winogrande.py): the
 * choices are the sentence up to "_" with each option put in (`doc_to_choice`), they become the contexts (multiple
 * input), and the shared continuation is " " + the sentence after "_", stripped (`doc_to_target`).
 */
export function winograndeItem(task: string, line: number, sentence: string, options: readonly string[], label: number): McItem {
  const blank = sentence.indexOf('_');
  if (blank < 0) throw taskDataError(task, line, 'the sentence has no "_" blank');
  const target = sentence.slice(blank + 1).trim();
  const contexts = options.map((o) => sentence.slice(0, blank) + o);
  return {
    requests: contexts.map((context) => ({ context, continuation: ` ${target}` })),
    label,
    normLengths: contexts.map((c) => c.length),
    target,
  };
}

/**
 * lambada_openai (lm_eval/tasks/lambada/lambada_openai.yaml): context = the words split on " " but the last, joined
 * by " "; continuation = " " + the last word (a loglikelihood request: no target delimiter is added,
 * lm_eval/api/task.py v0.4.8 `construct_requests` line 1366). As a few-shot example the sampler still adds the
 * target delimiter before the target (samplers.py lines 111-119): context + " " + " " + word.
 */
export function lambadaItem(task: string, line: number, text: string): McItem {
  const words = text.split(' ');
  if (words.length < 2) throw taskDataError(task, line, 'the text has no " " to split its last word off');
  const context = words.slice(0, -1).join(' ');
  const target = ` ${words[words.length - 1]!}`;
  return { requests: [{ context, continuation: target }], label: 0, normLengths: [target.length], target, fewshotExample: `${context} ${target}` };
}

const hellaswag = (name: string, description: string, dataFile: string, aliases?: string[]) =>
  defineTask({
    name,
    description,
    dataFile,
    source: licenses.hellaswag,
    ...(aliases ? { aliases } : {}),
    lmEval: lmEvalConfigs.hellaswag,
    toItem(doc, line) {
      const endings = field(name, doc, 'endings', line).strings().map(hellaswagPreprocess);
      return choiceItem(hellaswagPreprocess(field(name, doc, 'ctx', line).string()), endings, field(name, doc, 'label', line).index(endings.length));
    },
  });

export const builtinTasks: readonly MultipleChoiceTask[] = [
  defineTask({
    name: 'piqa',
    description: 'PIQA (physical commonsense), 2 choices',
    dataFile: 'piqa_val.jsonl',
    source: licenses.piqa,
    lmEval: lmEvalConfigs.piqa,
    toItem(doc, line) {
      const choices = field('piqa', doc, 'choices', line).strings();
      return choiceItem(`Question: ${field('piqa', doc, 'goal', line).string()}\nAnswer:`, choices, field('piqa', doc, 'label', line).index(choices.length));
    },
  }),
  hellaswag('hellaswag', 'HellaSwag (sentence completion), 4 choices', 'hellaswag_val.jsonl'),
  hellaswag('hellaswag-mini', 'HellaSwag, the first 100 validation items (shipped with this package)', 'hellaswag_val.head100.jsonl'),
  defineTask({ name: 'arc_easy', aliases: ['arc-easy'], description: 'ARC-Easy test (2376), 3-5 choices', dataFile: 'arc_easy_test.jsonl', source: licenses.arc, lmEval: lmEvalConfigs.arc, toItem: questionChoices('arc_easy', (q) => `Question: ${q}\nAnswer:`) }),
  defineTask({ name: 'arc_challenge', aliases: ['arc-challenge'], description: 'ARC-Challenge test (1172), 3-5 choices', dataFile: 'arc_challenge_test.jsonl', source: licenses.arc, lmEval: lmEvalConfigs.arc, toItem: questionChoices('arc_challenge', (q) => `Question: ${q}\nAnswer:`) }),
  defineTask({ name: 'arc-easy-dev', description: 'ARC-Easy dev (570), original AI2 schema', dataFile: 'arc_easy_dev.jsonl', source: licenses.arcDev, lmEval: lmEvalConfigs.arc, toItem: arcOriginal('arc-easy-dev') }),
  defineTask({ name: 'arc-challenge-dev', description: 'ARC-Challenge dev (299), original AI2 schema', dataFile: 'arc_challenge_dev.jsonl', source: licenses.arcDev, lmEval: lmEvalConfigs.arc, toItem: arcOriginal('arc-challenge-dev') }),
  defineTask({ name: 'arc-easy-dev-mini', description: 'ARC-Easy dev, the first 200 items (shipped with this package)', dataFile: 'arc_easy_dev.head200.jsonl', source: licenses.arcDev, lmEval: lmEvalConfigs.arc, toItem: arcOriginal('arc-easy-dev-mini') }),
  defineTask({
    name: 'winogrande',
    description: 'WinoGrande-xl dev (1267), 2 options, partial evaluation (lm-eval), acc only',
    dataFile: 'winogrande_dev.jsonl',
    source: licenses.winogrande,
    metrics: ['acc'],
    lmEval: lmEvalConfigs.winogrande,
    toItem(doc, line) {
      const options = field('winogrande', doc, 'options', line).strings();
      return winograndeItem('winogrande', line, field('winogrande', doc, 'sentence', line).string(), options, field('winogrande', doc, 'label', line).index(options.length));
    },
  }),
  defineTask({
    name: 'boolq_nopassage',
    description: 'BoolQ dev WITHOUT passages (question only; NOT comparable to lm-eval boolq), yes/no, acc only',
    dataFile: 'boolq_val_nopassage.jsonl',
    source: licenses.boolq,
    metrics: ['acc'],
    lmEval: lmEvalConfigs.boolq_nopassage,
    toItem(doc, line) {
      const q = field('boolq_nopassage', doc, 'question', line).string();
      return choiceItem(`Question: ${q}?\nAnswer:`, ['no', 'yes'], field('boolq_nopassage', doc, 'label', line).boolean() ? 1 : 0);
    },
  }),
  defineTask({ name: 'openbookqa', description: 'OpenBookQA test (500), 4 choices (question stem only, as lm-eval)', dataFile: 'openbookqa_test.jsonl', source: licenses.obqa, lmEval: lmEvalConfigs.openbookqa, toItem: questionChoices('openbookqa', (q) => q) }),
  defineTask({
    name: 'social_iqa',
    aliases: ['siqa'],
    description: 'Social IQa dev (1954), 3 choices (context and question together), acc only',
    dataFile: 'siqa_val.jsonl',
    source: licenses.siqa,
    metrics: ['acc'],
    lmEval: lmEvalConfigs.social_iqa,
    toItem: questionChoices('social_iqa', (q) => `Q: ${q}\nA:`),
  }),
  defineTask({
    name: 'lambada_openai',
    description: 'LAMBADA (OpenAI) test (5153): acc = greedy last word, perplexity of the last word',
    dataFile: 'lambada_openai_test.jsonl',
    source: licenses.lambada,
    output: 'loglikelihood',
    metrics: ['perplexity', 'acc'],
    fewshotExcludesEval: false,
    lmEval: lmEvalConfigs.lambada_openai,
    toItem: (doc, line) => lambadaItem('lambada_openai', line, field('lambada_openai', doc, 'text', line).string()),
  }),
];

/** Names that are refused with a hint instead of "unknown" (lm-eval tasks our data cannot give exactly). */
export const refusedTasks: Readonly<Record<string, string>> = {
  boolq:
    "lm-eval's boolq puts the passage before the question, and our BoolQ data (boolq_val_nopassage.jsonl) has no passages: use --tasks boolq_nopassage (question only, not comparable to lm-eval's boolq), or give a BoolQ file with passages by path (--tasks ./boolq.jsonl with fields question, passage, label)",
};

/** Tasks by name or alias. Unknown names are an error that lists the known ones. */
export class TaskRegistry {
  private readonly tasks = new Map<string, MultipleChoiceTask>();
  private readonly aliases = new Map<string, string>();

  constructor(tasks: readonly MultipleChoiceTask[] = []) {
    for (const t of tasks) this.register(t);
  }

  register(task: MultipleChoiceTask): this {
    for (const n of [task.name, ...(task.aliases ?? [])]) {
      if (this.tasks.has(n) || this.aliases.has(n)) throw new TopiaryError('E_PLUGIN_DUPLICATE', `task "${n}" is already registered`);
    }
    this.tasks.set(task.name, task);
    for (const a of task.aliases ?? []) this.aliases.set(a, task.name);
    return this;
  }

  has(name: string): boolean {
    return this.tasks.has(name) || this.aliases.has(name);
  }

  get(name: string): MultipleChoiceTask {
    const task = this.tasks.get(this.aliases.get(name) ?? name);
    if (!task) {
      const refused = refusedTasks[name];
      if (refused !== undefined) throw new TopiaryError('E_USAGE', `task "${name}" is not available`, { where: '--tasks', hint: refused });
      throw new TopiaryError('E_USAGE', `unknown task "${name}" (a task file must be given by a path, e.g. ./${name}.jsonl)`, { where: '--tasks', hint: `known tasks: ${this.names().join(', ')}` });
    }
    return task;
  }

  /** Task names and aliases, sorted. */
  names(): string[] {
    return [...this.tasks.keys(), ...this.aliases.keys()].sort();
  }

  list(): MultipleChoiceTask[] {
    return [...this.tasks.keys()].sort().map((n) => this.tasks.get(n)!);
  }
}

export function defaultTaskRegistry(): TaskRegistry {
  return new TaskRegistry(builtinTasks);
}
