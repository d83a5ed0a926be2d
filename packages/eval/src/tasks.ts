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
  /** Index of the right choice. */
  label: number;
  /** Characters `acc_norm` divides each log-likelihood by (lm-eval: the length of the choice text). */
  normLengths: number[];
}

export interface MultipleChoiceTask {
  name: string;
  description: string;
  /** File name looked up in the eval data folders (see `evalDataDirs`), or an absolute path. */
  dataFile: string;
  /** Where the data comes from and its license (shown by `describe`). */
  source?: string;
  /** Turn one JSON record into an item; throw `taskDataError` for records that do not fit. */
  toItem(doc: Record<string, unknown>, line: number): McItem;
}

export function defineTask(task: MultipleChoiceTask): MultipleChoiceTask {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(task.name)) throw new TopiaryError('E_PLUGIN_INVALID', `task name "${task.name}" must be lowercase letters, digits and dashes`);
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
};

export const builtinTasks: readonly MultipleChoiceTask[] = [
  defineTask({
    name: 'piqa',
    description: 'PIQA (physical commonsense), 2 choices',
    dataFile: 'piqa_val.jsonl',
    source: licenses.piqa,
    toItem(doc, line) {
      const choices = field('piqa', doc, 'choices', line).strings();
      return choiceItem(`Question: ${field('piqa', doc, 'goal', line).string()}\nAnswer:`, choices, field('piqa', doc, 'label', line).index(choices.length));
    },
  }),
  ...(['hellaswag', 'hellaswag-mini'] as const).map((name) =>
    defineTask({
      name,
      description: name === 'hellaswag' ? 'HellaSwag (sentence completion), 4 choices' : 'HellaSwag, the first 100 validation items (shipped with this package)',
      dataFile: name === 'hellaswag' ? 'hellaswag_val.jsonl' : 'hellaswag_val.head100.jsonl',
      source: licenses.hellaswag,
      toItem(doc, line) {
        const endings = field(name, doc, 'endings', line).strings().map(hellaswagPreprocess);
        return choiceItem(hellaswagPreprocess(field(name, doc, 'ctx', line).string()), endings, field(name, doc, 'label', line).index(endings.length));
      },
    }),
  ),
  defineTask({ name: 'arc-easy', description: 'ARC-Easy test, 3-5 choices', dataFile: 'arc_easy_test.jsonl', source: licenses.arc, toItem: questionChoices('arc-easy', (q) => `Question: ${q}\nAnswer:`) }),
  defineTask({ name: 'arc-challenge', description: 'ARC-Challenge test, 3-5 choices', dataFile: 'arc_challenge_test.jsonl', source: licenses.arc, toItem: questionChoices('arc-challenge', (q) => `Question: ${q}\nAnswer:`) }),
  defineTask({ name: 'arc-easy-dev', description: 'ARC-Easy dev (570), original AI2 schema', dataFile: 'arc_easy_dev.jsonl', source: licenses.arcDev, toItem: arcOriginal('arc-easy-dev') }),
  defineTask({ name: 'arc-challenge-dev', description: 'ARC-Challenge dev (299), original AI2 schema', dataFile: 'arc_challenge_dev.jsonl', source: licenses.arcDev, toItem: arcOriginal('arc-challenge-dev') }),
  defineTask({ name: 'arc-easy-dev-mini', description: 'ARC-Easy dev, the first 200 items (shipped with this package)', dataFile: 'arc_easy_dev.head200.jsonl', source: licenses.arcDev, toItem: arcOriginal('arc-easy-dev-mini') }),
  defineTask({
    name: 'winogrande',
    description: 'WinoGrande dev, 2 options, partial evaluation (lm-eval style)',
    dataFile: 'winogrande_dev.jsonl',
    source: licenses.winogrande,
    toItem(doc, line) {
      const sentence = field('winogrande', doc, 'sentence', line).string();
      const options = field('winogrande', doc, 'options', line).strings();
      const label = field('winogrande', doc, 'label', line).index(options.length);
      const blank = sentence.indexOf('_');
      if (blank < 0) throw taskDataError('winogrande', line, 'the sentence has no "_" blank');
      const continuation = ` ${sentence.slice(blank + 1).trim()}`;
      return {
        requests: options.map((o) => ({ context: sentence.slice(0, blank) + o, continuation })),
        label,
        normLengths: options.map(() => continuation.length - 1),
      };
    },
  }),
  defineTask({
    name: 'boolq',
    description: 'BoolQ dev WITHOUT passages (question only; not comparable to lm-eval boolq), yes/no',
    dataFile: 'boolq_val_nopassage.jsonl',
    source: licenses.boolq,
    toItem(doc, line) {
      const q = field('boolq', doc, 'question', line).string();
      return choiceItem(`Question: ${q}?\nAnswer:`, ['no', 'yes'], field('boolq', doc, 'label', line).boolean() ? 1 : 0);
    },
  }),
  defineTask({ name: 'openbookqa', description: 'OpenBookQA test, 4 choices (no fact)', dataFile: 'openbookqa_test.jsonl', source: licenses.obqa, toItem: questionChoices('openbookqa', (q) => q) }),
  defineTask({ name: 'siqa', description: 'Social IQa dev, 3 choices (context and question together)', dataFile: 'siqa_val.jsonl', source: licenses.siqa, toItem: questionChoices('siqa', (q) => `Q: ${q}\nA:`) }),
];

/** Tasks by name. Unknown names are an error that lists the known ones. */
export class TaskRegistry {
  private readonly tasks = new Map<string, MultipleChoiceTask>();

  constructor(tasks: readonly MultipleChoiceTask[] = []) {
    for (const t of tasks) this.register(t);
  }

  register(task: MultipleChoiceTask): this {
    if (this.tasks.has(task.name)) throw new TopiaryError('E_PLUGIN_DUPLICATE', `task "${task.name}" is already registered`);
    this.tasks.set(task.name, task);
    return this;
  }

  has(name: string): boolean {
    return this.tasks.has(name);
  }

  get(name: string): MultipleChoiceTask {
    const task = this.tasks.get(name);
    if (!task) {
      throw new TopiaryError('E_USAGE', `unknown task "${name}"`, { where: '--tasks', hint: `known tasks: ${this.names().join(', ')}` });
    }
    return task;
  }

  names(): string[] {
    return [...this.tasks.keys()].sort();
  }

  list(): MultipleChoiceTask[] {
    return this.names().map((n) => this.tasks.get(n)!);
  }
}

export function defaultTaskRegistry(): TaskRegistry {
  return new TaskRegistry(builtinTasks);
}
