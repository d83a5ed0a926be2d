/**
 * A run folder: everything one run writes, consistent at every moment.
 *
 *   recipe.resolved.yaml   the recipe with defaults filled in and paths made absolute
 *   state.json             how many stages are complete and where the model after the last one is
 *   metrics.jsonl          one metric event per line (appended; a torn last line is dropped on resume)
 *   checkpoints/stage-N/   the model after stage N (written to a temp folder, then renamed: complete or absent)
 *   model/                 the final model (safetensors + config.json + tokenizer)
 *   results.json           per-stage results, the eval table (written atomically after every stage)
 *   report.html            the self-contained report
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { ioError, TopiaryError, type EventBus, type MetricEvent } from '@topiary/kernel';
import { fsyncDir, writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import type { RunResults } from '@topiary/report';

export interface RunState {
  /** Number of stages completed. */
  completed: number;
  /** Folder (relative to the run folder) of the model after the last completed stage; absent before any. */
  modelDir?: string;
  /** The source model the run started from (absolute). */
  source: string;
}

export class RunFolder {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  create(): void {
    try {
      mkdirSync(this.path('checkpoints'), { recursive: true });
    } catch (e) {
      throw ioError(e, this.dir, 'create the run folder');
    }
  }

  exists(): boolean {
    return existsSync(this.path('state.json'));
  }

  writeRecipe(resolved: unknown): void {
    writeFileAtomic(this.path('recipe.resolved.yaml'), stringify(resolved));
  }

  readState(): RunState {
    const file = this.path('state.json');
    if (!existsSync(file)) {
      throw new TopiaryError('E_USAGE', 'not a run folder (no state.json)', { where: this.dir, hint: 'pass the folder a previous `topiary run` wrote' });
    }
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as RunState;
    } catch (e) {
      throw new TopiaryError('E_FORMAT', `state.json is unreadable: ${(e as Error).message}`, { file });
    }
  }

  writeState(state: RunState): void {
    writeJsonAtomic(this.path('state.json'), state);
  }

  writeResults(results: RunResults): void {
    writeJsonAtomic(this.path('results.json'), results);
  }

  readResults(): RunResults | undefined {
    const file = this.path('results.json');
    if (!existsSync(file)) return undefined;
    return JSON.parse(readFileSync(file, 'utf8')) as RunResults;
  }

  /**
   * Save a stage's model as a checkpoint: written into a temp folder by `save`, then renamed into place, so a
   * checkpoint folder is complete or absent. Returns its path relative to the run folder.
   */
  async checkpoint(stage: number, save: (dir: string) => Promise<void>): Promise<string> {
    const rel = join('checkpoints', `stage-${stage}`);
    await this.saveFolder(this.path(rel), this.path('checkpoints', `.stage-${stage}.tmp-${process.pid}`), save, 'move the checkpoint into place');
    return rel;
  }

  /** Replace model/ with a finished model, the same way. */
  async finalModel(save: (dir: string) => Promise<void>): Promise<string> {
    const final = this.path('model');
    await this.saveFolder(final, this.path(`.model.tmp-${process.pid}`), save, 'move the final model into place');
    return final;
  }

  /** Write a folder through a temp folder and a rename: readers see the old folder or the new one, never half. */
  private async saveFolder(final: string, tmp: string, save: (dir: string) => Promise<void>, action: string): Promise<void> {
    rmSync(tmp, { recursive: true, force: true });
    await save(tmp);
    try {
      rmSync(final, { recursive: true, force: true });
      renameSync(tmp, final);
    } catch (e) {
      throw ioError(e, final, action);
    }
    fsyncDir(dirname(final));
  }

  /** Drop a torn last line left by a killed run, so appends start on a clean line. */
  repairMetrics(): void {
    const file = this.path('metrics.jsonl');
    if (!existsSync(file)) return;
    const text = readFileSync(file, 'utf8');
    if (text === '' || text.endsWith('\n')) return;
    const cut = text.lastIndexOf('\n');
    writeFileSync(file, cut < 0 ? '' : text.slice(0, cut + 1));
  }

  /** Append every metric event of the bus to metrics.jsonl; returns the unsubscribe function. */
  recordMetrics(bus: EventBus, stageIndex: () => number): () => void {
    const file = this.path('metrics.jsonl');
    return bus.on('metric', (event: MetricEvent) => {
      // metrics without a step of their own (an evaluation) are placed at their stage's index
      const line = JSON.stringify({ ...event, step: event.step ?? stageIndex(), tags: { ...(event.tags ?? {}), stage: stageIndex() } });
      try {
        appendFileSync(file, `${line}\n`);
      } catch (e) {
        throw ioError(e, file, 'append a metric');
      }
    });
  }
}
