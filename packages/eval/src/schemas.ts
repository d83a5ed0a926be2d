/**
 * Task files given by path (`--tasks ./mytask.jsonl`): our own schema, or a public dataset's own schema, told apart
 * by the fields of the file's first record. Each schema turns a record into requests exactly as the lm-eval task of
 * that dataset does (lm_eval/tasks/…, cited per schema below). The first schema whose fields are all present wins,
 * in the order of `taskSchemas`; a file that matches none is refused, naming for each schema the fields it lacks.
 */
import { basename, extname, resolve } from 'node:path';
import { readJsonLines } from '@topiary/corpus';
import { TopiaryError } from '@topiary/kernel';
import {
  choiceItem,
  defineTask,
  field,
  hellaswagPreprocess,
  lambadaItem,
  lmEvalConfigs,
  taskDataError,
  winograndeItem,
  type LmEvalConfig,
  type McItem,
  type MultipleChoiceTask,
  type OutputType,
  type TaskMetric,
} from './tasks.js';

export interface TaskSchema {
  /** Short name shown in errors and `--list-tasks`. */
  name: string;
  /** The lm-eval task whose scoring rules the schema follows. */
  lmEvalTask: string;
  /** Fields the first record must have (all of them). */
  fields: readonly string[];
  output?: OutputType;
  metrics?: readonly TaskMetric[];
  lmEval?: LmEvalConfig;
  toItem(task: string, doc: Record<string, unknown>, line: number): McItem;
}

/** An integer label, also from a numeric string (HF datasets store some labels as strings: HellaSwag "3"). */
function intLabel(task: string, doc: Record<string, unknown>, key: string, line: number, count: number, offset = 0): number {
  const v = doc[key];
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n - offset < 0 || n - offset >= count) {
    throw taskDataError(task, line, `field "${key}" must be ${offset ? `a number in [${offset}, ${count - 1 + offset}]` : `an index in [0, ${count - 1}]`} (or such a number as a string), got ${JSON.stringify(v)}`);
  }
  return n - offset;
}

/** Python's str.capitalize(): the first character upper case, the rest lower case. */
function capitalize(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1).toLowerCase();
}

/** `{choices: {text: [...], label: [...]}, answerKey}` (HF ARC / OpenBookQA): the texts and the gold index. */
function labelledChoices(task: string, doc: Record<string, unknown>, line: number, key: string): { texts: string[]; gold: number } {
  const c = doc.choices as { text?: unknown; label?: unknown } | undefined;
  if (typeof c !== 'object' || c === null || !Array.isArray(c.text) || !Array.isArray(c.label) || c.text.length !== c.label.length || c.text.length < 2 || !c.text.every((t) => typeof t === 'string')) {
    throw taskDataError(task, line, 'field "choices" must be {text: [strings], label: [labels]} of equal length ≥ 2');
  }
  const gold = c.label.indexOf(key);
  if (gold < 0) throw taskDataError(task, line, `answerKey ${JSON.stringify(key)} is not one of the choice labels ${JSON.stringify(c.label)}`);
  return { texts: c.text as string[], gold };
}

export const taskSchemas: readonly TaskSchema[] = [
  {
    // lm_eval/tasks/arc/arc_easy.yaml lines 10-12: "Question: {{question}}\nAnswer:", target choices.label.index(answerKey), choices choices.text
    name: 'ARC (HF allenai/ai2_arc)',
    lmEvalTask: 'arc_easy',
    fields: ['question', 'choices', 'answerKey'],
    lmEval: lmEvalConfigs.arc,
    toItem(task, doc, line) {
      const q = field(task, doc, 'question', line);
      if (typeof doc.question === 'object' && doc.question !== null) return arcAi2(task, doc, line);
      const { texts, gold } = labelledChoices(task, doc, line, String(doc.answerKey));
      return choiceItem(`Question: ${q.string()}\nAnswer:`, texts, gold);
    },
  },
  {
    // The AI2 original ARC files: {question: {stem, choices: [{text, label}]}, answerKey}; same prompt as above.
    name: 'ARC (AI2 original)',
    lmEvalTask: 'arc_easy',
    fields: ['question.stem', 'question.choices', 'answerKey'],
    lmEval: lmEvalConfigs.arc,
    toItem: (task, doc, line) => arcAi2(task, doc, line),
  },
  {
    // lm_eval/tasks/openbookqa/openbookqa.yaml lines 8-10: text question_stem, target choices.label.index(answerKey.lstrip())
    name: 'OpenBookQA (HF allenai/openbookqa)',
    lmEvalTask: 'openbookqa',
    fields: ['question_stem', 'choices', 'answerKey'],
    lmEval: lmEvalConfigs.openbookqa,
    toItem(task, doc, line) {
      const { texts, gold } = labelledChoices(task, doc, line, String(doc.answerKey).replace(/^\s+/u, ''));
      return choiceItem(field(task, doc, 'question_stem', line).string(), texts, gold);
    },
  },
  {
    // lm_eval/tasks/piqa/piqa.yaml lines 8-10: "Question: {{goal}}\nAnswer:", choices [sol1, sol2], target label
    name: 'PIQA (HF piqa)',
    lmEvalTask: 'piqa',
    fields: ['goal', 'sol1', 'sol2', 'label'],
    lmEval: lmEvalConfigs.piqa,
    toItem(task, doc, line) {
      const choices = [field(task, doc, 'sol1', line).string(), field(task, doc, 'sol2', line).string()];
      return choiceItem(`Question: ${field(task, doc, 'goal', line).string()}\nAnswer:`, choices, intLabel(task, doc, 'label', line, 2));
    },
  },
  {
    // lm_eval/tasks/hellaswag/utils.py lines 6-25: query = preprocess(activity_label + ": " + ctx_a + " " +
    // ctx_b.capitalize()), choices = [preprocess(e) for e in endings], gold = int(label). Without ctx_a/ctx_b/
    // activity_label (our derived file, ctx already "label: context"), the query is preprocess(ctx).
    name: 'HellaSwag (HF Rowan/hellaswag)',
    lmEvalTask: 'hellaswag',
    fields: ['ctx', 'endings', 'label'],
    lmEval: lmEvalConfigs.hellaswag,
    toItem(task, doc, line) {
      const endings = field(task, doc, 'endings', line).strings().map(hellaswagPreprocess);
      const full = typeof doc.activity_label === 'string' && typeof doc.ctx_a === 'string' && typeof doc.ctx_b === 'string';
      const query = full
        ? hellaswagPreprocess(`${doc.activity_label as string}: ${doc.ctx_a as string} ${capitalize(doc.ctx_b as string)}`)
        : hellaswagPreprocess(field(task, doc, 'ctx', line).string());
      return choiceItem(query, endings, intLabel(task, doc, 'label', line, endings.length));
    },
  },
  {
    // lm_eval/tasks/winogrande/preprocess_winogrande.py: answer "1"/"2" → 0/1; partial evaluation (see winograndeItem)
    name: 'WinoGrande (HF allenai/winogrande)',
    lmEvalTask: 'winogrande',
    fields: ['sentence', 'option1', 'option2', 'answer'],
    metrics: ['acc'],
    lmEval: lmEvalConfigs.winogrande,
    toItem(task, doc, line) {
      const options = [field(task, doc, 'option1', line).string(), field(task, doc, 'option2', line).string()];
      return winograndeItem(task, line, field(task, doc, 'sentence', line).string(), options, intLabel(task, doc, 'answer', line, 2, 1));
    },
  },
  {
    // lm_eval/tasks/siqa/siqa.yaml lines 7-10: "Q: {{context}} {{question}}\nA:", choices [answerA, answerB, answerC], target label - 1
    name: 'Social IQa (HF social_i_qa)',
    lmEvalTask: 'social_iqa',
    fields: ['context', 'question', 'answerA', 'answerB', 'answerC', 'label'],
    metrics: ['acc'],
    lmEval: lmEvalConfigs.social_iqa,
    toItem(task, doc, line) {
      const choices = ['answerA', 'answerB', 'answerC'].map((k) => field(task, doc, k, line).string());
      return choiceItem(`Q: ${field(task, doc, 'context', line).string()} ${field(task, doc, 'question', line).string()}\nA:`, choices, intLabel(task, doc, 'label', line, 3, 1));
    },
  },
  {
    // lm_eval/tasks/super_glue/boolq/default.yaml: "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices ["no", "yes"],
    // target label (super_glue: 0/1; the google/boolq files have "answer": true/false instead — accepted as a label too)
    name: 'BoolQ (HF super_glue/boolq)',
    lmEvalTask: 'boolq',
    fields: ['passage', 'question', 'label'],
    metrics: ['acc'],
    lmEval: lmEvalConfigs.boolq,
    toItem(task, doc, line) {
      const label = typeof doc.label === 'boolean' ? (doc.label ? 1 : 0) : intLabel(task, doc, 'label', line, 2);
      return choiceItem(`${field(task, doc, 'passage', line).string()}\nQuestion: ${field(task, doc, 'question', line).string()}?\nAnswer:`, ['no', 'yes'], label);
    },
  },
  {
    // Our schema: {"context": string, "choices": [strings], "label": index}; context → " " + choice (lm-eval's
    // default target_delimiter), acc and acc_norm.
    name: 'ours {context, choices, label}',
    lmEvalTask: 'multiple_choice',
    fields: ['context', 'choices', 'label'],
    toItem(task, doc, line) {
      const choices = field(task, doc, 'choices', line).strings();
      return choiceItem(field(task, doc, 'context', line).string(), choices, field(task, doc, 'label', line).index(choices.length));
    },
  },
  {
    // lm_eval/tasks/lambada/lambada_openai.yaml lines 8-9 (see lambadaItem)
    name: 'LAMBADA {text}',
    lmEvalTask: 'lambada_openai',
    fields: ['text'],
    output: 'loglikelihood',
    metrics: ['perplexity', 'acc'],
    lmEval: lmEvalConfigs.lambada_openai,
    toItem: (task, doc, line) => lambadaItem(task, line, field(task, doc, 'text', line).string()),
  },
];

function arcAi2(task: string, doc: Record<string, unknown>, line: number): McItem {
  const q = doc.question as { stem?: unknown; choices?: unknown };
  if (typeof q.stem !== 'string' || !Array.isArray(q.choices) || !q.choices.every((c) => typeof c === 'object' && c !== null && typeof (c as { text?: unknown }).text === 'string')) {
    throw taskDataError(task, line, 'expected {question: {stem, choices: [{text, label}]}, answerKey}');
  }
  const choices = q.choices as { text: string; label?: unknown }[];
  const gold = choices.findIndex((c) => c.label === doc.answerKey);
  if (gold < 0) throw taskDataError(task, line, `answerKey ${JSON.stringify(doc.answerKey)} is not one of the choice labels`);
  return choiceItem(`Question: ${q.stem}\nAnswer:`, choices.map((c) => c.text), gold);
}

function hasField(doc: Record<string, unknown>, path: string): boolean {
  let v: unknown = doc;
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null || !(k in v)) return false;
    v = (v as Record<string, unknown>)[k];
  }
  return true;
}

/** The schema a record matches (first in `taskSchemas` order), or an E_DATA error naming what each schema lacks. */
export function detectSchema(doc: Record<string, unknown>, file: string): TaskSchema {
  for (const s of taskSchemas) if (s.fields.every((f) => hasField(doc, f))) return s;
  const lacks = taskSchemas.map((s) => `${s.name} needs ${s.fields.join(', ')} (lacks ${s.fields.filter((f) => !hasField(doc, f)).join(', ')})`);
  throw new TopiaryError('E_DATA', `the task file matches no known schema: its first record has the fields ${Object.keys(doc).join(', ') || '(none)'}`, {
    file,
    where: '--tasks',
    hint: lacks.join('; '),
  });
}

/** Whether a `--tasks` entry names a file rather than a registered task: it has a path separator or ends in .jsonl / .json. */
export function isTaskPath(spec: string): boolean {
  return /[\\/]/.test(spec) || /\.jsonl?$/i.test(spec);
}

/** A task name from a file name: lower case, characters other than letters, digits, `_`, `.` and `-` become `_`. */
function taskNameFromFile(file: string): string {
  const base = basename(file, extname(file)).toLowerCase().replace(/[^a-z0-9_.-]/g, '_');
  return /^[a-z0-9]/.test(base) ? base : `task_${base}`;
}

/**
 * A task read from a JSON-lines file by path: its schema detected from the first record. The task is named after
 * the file (`./data/my-piqa.jsonl` → `my-piqa`) and scored by the schema's lm-eval rules.
 */
export async function taskFromFile(path: string, cwd = process.cwd()): Promise<MultipleChoiceTask & { schema: TaskSchema }> {
  const file = resolve(cwd, path);
  let first: Record<string, unknown> | undefined;
  try {
    for await (const { value } of readJsonLines(file)) {
      first = value as Record<string, unknown>;
      break;
    }
  } catch (e) {
    if (e instanceof TopiaryError) throw e.file === undefined ? e.inFile(file) : e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new TopiaryError('E_IO', `task file ${file} not found`, { where: '--tasks', file });
    throw e;
  }
  if (first === undefined) throw new TopiaryError('E_DATA', 'the task file has no records', { file, where: '--tasks' });
  if (typeof first !== 'object' || first === null || Array.isArray(first)) throw new TopiaryError('E_DATA', 'the task file\'s records must be JSON objects', { file, where: '--tasks' });
  const schema = detectSchema(first, file);
  const name = taskNameFromFile(file);
  const task = defineTask({
    name,
    description: `${file} (${schema.name}, scored as lm-eval's ${schema.lmEvalTask})`,
    dataFile: file,
    ...(schema.output ? { output: schema.output } : {}),
    ...(schema.metrics ? { metrics: schema.metrics } : {}),
    ...(schema.lmEval ? { lmEval: schema.lmEval } : {}),
    toItem: (doc, line) => schema.toItem(name, doc, line),
  });
  return { ...task, schema };
}
