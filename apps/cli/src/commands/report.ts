/** `topiary report RUNDIR`: (re)write a run folder's self-contained report.html from its results and metrics. */
import type { Command } from 'commander';
import { writeReport } from '@topiary/report';
import type { GlobalOptions } from '../context.js';

export function registerReport(program: Command, globals: () => GlobalOptions): void {
  program
    .command('report')
    .argument('<rundir>', 'a run folder written by topiary run (results.json, metrics.jsonl)')
    .description('Write report.html for a run folder: curves, per-layer sparsity/width bars, saliency histograms, eval table')
    .addHelpText('after', '\nThe page is self-contained (inline SVG, no scripts, no network).\n\nExamples:\n  $ topiary report runs/quickstart-wanda-50\n  $ topiary report runs/quickstart-wanda-50 --json')
    .action((rundir: string) => {
      const path = writeReport(rundir);
      process.stdout.write(globals().json ? `${JSON.stringify({ report: path })}\n` : `report: ${path}\n`);
    });
}
