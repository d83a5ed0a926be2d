/**
 * Recipe stages: `prune`, `eval`, `finetune`, `train` — and any kind a plugin adds. A stage declares its options as
 * a schema (validated at the door, before any stage runs), may `prepare` what needs the run's plugins (a pruner's
 * own options), and `run`s on the current model. The pipeline owns the run folder, checkpoints, resume and results.
 */
import type { DependencyContainer } from 'tsyringe';
import type { EventBus } from '../events.js';
import type { OptionsOf, OptionsSchema } from '../options.js';
import type { Recipe } from '../recipe.js';
import type { TensorBackend } from './backend.js';
import type { CausalLM } from './model.js';
import type { Tokenizer } from './tokenizer.js';

/** What a stage can see while its recipe is checked: the run's plugins and the recipe. */
export interface StagePrepareContext {
  /** The run's own container (its plugins only). */
  container: DependencyContainer;
  recipe: Recipe;
  /** Path of the stage's options in the recipe (`stages[1].prune`), or `''` for a single-stage command. */
  where: string;
}

/** What a running stage gets. */
export interface StageContext extends StagePrepareContext {
  backend: TensorBackend;
  events: EventBus;
  tokenizer: Tokenizer;
  /** The tokenizer file, copied next to every saved model. */
  tokenizerPath: string;
  seed: number;
  /** The stage's position in the recipe. */
  index: number;
  /** Aborted on SIGINT/SIGTERM: stop at a safe point and report `partial`. */
  signal: AbortSignal;
  /** Folder of the current model on disk (the latest checkpoint, or the recipe's model). */
  modelPath: string;
  runDir: string;
  /** A folder of the stage's own inside the run folder (created on demand). */
  stageDir: string;
}

/** The common fields of a stage's entry in results.json; stages add their own. */
export interface StageResultBase {
  index: number;
  kind: string;
  /** The method for prune stages, else the kind. */
  name: string;
  seconds: number;
}

export interface StageOutcome<Result extends StageResultBase = StageResultBase> {
  model: CausalLM;
  result: Result;
  /** Whether the stage changed the weights (then a checkpoint is written). */
  changedModel: boolean;
  /** True when the stage stopped early on an interrupt (it is then redone on resume). */
  partial?: boolean;
}

export interface Stage<Schema extends OptionsSchema = OptionsSchema, Prepared = OptionsOf<Schema>> {
  /** The key recipes write (`- prune: {...}`). */
  readonly kind: string;
  readonly description: string;
  /** Its options, declared once (validated with exact paths before anything runs). */
  readonly options: Schema;
  /** Checks and resolution that need the run's plugins, before any stage runs; default: the options as parsed. */
  prepare?(options: OptionsOf<Schema>, ctx: StagePrepareContext): Prepared;
  run(model: CausalLM, prepared: Prepared, ctx: StageContext): Promise<StageOutcome>;
  /**
   * Whether it runs on a streamed model (one block on the tensor heap at a time; `CausalLM.streamed`). A run whose
   * every stage says so streams its model; absent: it needs the whole model in memory.
   */
  streams?(prepared: Prepared, ctx: StagePrepareContext): boolean;
  /**
   * Its options' JSON Schema when they depend on the installed plugins (the prune stage: one shape per pruner);
   * absent: the JSON Schema of `options`.
   */
  jsonSchema?(container: DependencyContainer): Record<string, unknown>;
}
