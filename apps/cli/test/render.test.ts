import { describe, expect, it } from 'vitest';
import { EventBus } from '@topiary/kernel';
import { renderEvents } from '../src/context.js';
import { fitWidth, renderAuto, renderJsonLines, renderText, renderTty, visibleWidth } from '../src/render.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 100, write: (s: string) => chunks.push(s) } };
}

describe('events', () => {
  it('JSON lines: one parseable object per event; quiet drops progress', () => {
    const bus = new EventBus();
    const out = sink(false);
    const stop = renderJsonLines(bus, out.stream);
    bus.progress('prune:wanda', 1, 5, 'layer 0');
    bus.metric('ppl', 12.5, 3);
    bus.log('info', 'hello');
    stop();
    bus.log('info', 'after stop');
    const lines = out.chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(['progress', 'metric', 'log']);
    expect(lines[1]).toMatchObject({ name: 'ppl', value: 12.5, step: 3 });
    const quiet = sink(false);
    renderJsonLines(bus, quiet.stream, { quiet: true });
    bus.progress('x', 1, 2);
    bus.log('warn', 'careful');
    expect(quiet.chunks).toHaveLength(1);
  });

  it('TTY: draws a bar and ends it with a newline when done; no colour with NO_COLOR', () => {
    const bus = new EventBus();
    const out = sink(true);
    renderTty(bus, out.stream, { color: false });
    bus.progress('eval', 0, 4, undefined, 'windows');
    bus.progress('eval', 4, 4, 'ppl 3.2', 'windows');
    bus.log('warn', 'something');
    const text = out.chunks.join('');
    expect(text).toContain('eval [');
    expect(text).toContain('4/4 windows');
    expect(text).toContain('ppl 3.2\n');
    expect(text).toContain('warning: something\n');
    expect(text).not.toContain('\x1b[33m');
  });
});


/** Every event kind once (plus a second progress update), for the filters. */
function emitAll(bus: EventBus): void {
  bus.progress('eval:perplexity', 0, 4, undefined, 'windows');
  bus.log('info', 'backend wasm: as requested');
  bus.metric('eval/ppl', 12.5, 3, { file: 'a.txt' });
  bus.progress('eval:perplexity', 4, 4, 'ppl 12.5', 'windows');
  bus.log('warn', 'careful');
  bus.log('error', 'broken');
  bus.log('debug', 'details');
  bus.emit({ type: 'checkpoint', path: '/runs/x/checkpoints/stage-1', step: 1 });
}

const isJson = (line: string) => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};

describe('stderr events without --json: plain text when not a terminal', () => {
  it('renderAuto on a non-TTY writes human lines, none of them JSON', () => {
    const bus = new EventBus();
    const out = sink(false);
    renderAuto(bus, out.stream);
    emitAll(bus);
    const lines = out.chunks.join('').trimEnd().split('\n');
    expect(lines.some(isJson)).toBe(false);
    expect(lines).toEqual([
      'eval:perplexity 0/4 windows (0%)',
      'backend wasm: as requested',
      'eval/ppl = 12.5 (step 3) file=a.txt',
      'eval:perplexity 4/4 windows (100%) ppl 12.5',
      'warning: careful',
      'error: broken',
      'checkpoint step 1 → /runs/x/checkpoints/stage-1',
    ]);
  });

  it('text progress: one line when a task starts, at most one per interval after, and the last', () => {
    const bus = new EventBus();
    const out = sink(false);
    let t = 0;
    renderText(bus, out.stream, { progressEveryMs: 1000, now: () => t });
    for (let i = 0; i <= 10; i++) {
      t = i * 300;
      bus.progress('prune:wanda', i, 10, `layer ${i}`);
    }
    expect(out.chunks.map((c) => c.split(' ')[1])).toEqual(['0/10', '4/10', '8/10', '10/10']);
  });

  it('-q drops progress, info logs and metrics (text and JSON lines); warnings and errors stay', () => {
    const bus = new EventBus();
    const text = sink(false);
    const json = sink(false);
    renderText(bus, text.stream, { quiet: true });
    renderJsonLines(bus, json.stream, { quiet: true });
    emitAll(bus);
    expect(text.chunks.join('')).toBe('warning: careful\nerror: broken\n');
    const types = json.chunks.map((c) => JSON.parse(c) as { type: string; level?: string }).map((e) => e.level ?? e.type);
    expect(types).toEqual(['warn', 'error', 'checkpoint']); // a machine resuming a run still learns of checkpoints
    const tty = sink(true);
    renderTty(bus, tty.stream, { quiet: true, color: false });
    emitAll(bus);
    expect(tty.chunks.join('')).toBe('warning: careful\nerror: broken\n');
  });

  it('the global flags pick the format: --json → JSON lines (as before: no progress or info), --log-format json → every event, --log-format text → text', () => {
    const base = { quiet: false, debug: false };
    const pick = (flags: { json: boolean; logFormat?: 'text' | 'json' }, isTTY = false) => {
      const bus = new EventBus();
      const out = sink(isTTY);
      renderEvents(bus, { ...base, ...flags }, out.stream);
      emitAll(bus);
      return out.chunks.join('').trimEnd().split('\n');
    };
    const asJson = pick({ json: true });
    expect(asJson.every(isJson)).toBe(true);
    expect(asJson.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['metric', 'log', 'log', 'checkpoint']);
    const logJson = pick({ json: false, logFormat: 'json' });
    expect(logJson.every(isJson)).toBe(true);
    expect(logJson.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['progress', 'log', 'metric', 'progress', 'log', 'log', 'checkpoint']);
    expect(pick({ json: true, logFormat: 'text' }).some(isJson)).toBe(false);
    expect(pick({ json: false }).some(isJson)).toBe(false);
    expect(pick({ json: false }, true).join('\n')).toContain('[');
    // -q with --json also drops metrics
    const bus = new EventBus();
    const out = sink(false);
    renderEvents(bus, { json: true, quiet: true, debug: false }, out.stream);
    emitAll(bus);
    expect(out.chunks.map((c) => (JSON.parse(c) as { type: string }).type)).toEqual(['log', 'log', 'checkpoint']);
  });

  it('--log-format is a global flag with two choices', async () => {
    const { runCli } = await import('./helpers.js');
    const bad = await runCli(['--log-format', 'xml', 'plugins']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Allowed choices are text, json");
    const help = await runCli(['--help']);
    expect(help.stdout).toContain('--log-format <format>');
  });
});

describe('progress bars on a narrow terminal', () => {
  /** A fake TTY whose width can change; `frames` are what is left on the line after each carriage return. */
  function terminal(columns: number) {
    const chunks: string[] = [];
    const stream = { isTTY: true, columns, write: (s: string) => chunks.push(s) };
    const frames = () =>
      chunks
        .join('')
        .split(/\r|\n/)
        .map((f) => f.replace(/^\x1b\[2K/, ''))
        .filter((f) => f !== '');
    return { stream, chunks, frames };
  }

  it('at 60 columns every update overwrites the same line and fits, with a long task name and long info', () => {
    const bus = new EventBus();
    const term = terminal(60);
    let t = 0;
    renderTty(bus, term.stream, { color: true, now: () => t });
    const task = 'finetune:distill-from-the-dense-source-model-with-a-long-name';
    for (let i = 0; i < 50; i++) {
      t += 100;
      bus.progress(task, i, 50, `loss ${(3 - i / 50).toFixed(4)} lr 1.0e-4 tokens/s 12345 teacher ppl 17.3 student ppl 21.9`, 'steps');
    }
    const drawn = term.chunks.join('');
    // redrawn in place: a carriage return and erase before each frame, no newline until the task is done
    expect(drawn).not.toContain('\n');
    expect(drawn.split('\r\x1b[2K').length - 1).toBe(50);
    for (const frame of term.frames()) expect(visibleWidth(frame), JSON.stringify(frame)).toBeLessThanOrEqual(60);
    // still useful: the counts are kept
    expect(term.frames().at(-1)).toContain('49/50 steps');
    t += 100;
    bus.progress(task, 50, 50, 'done', 'steps');
    expect(term.chunks.at(-1)).toBe('\n');
  });

  it('reads the width at every draw: after a resize to 40 columns the lines fit 40', () => {
    const bus = new EventBus();
    const term = terminal(100);
    let t = 0;
    renderTty(bus, term.stream, { color: false, now: () => t });
    t += 100;
    bus.progress('prune:sparsegpt', 1, 10, 'layer 1 of 10: model.layers.1.self_attn.q_proj.weight', 'layers');
    expect(visibleWidth(term.frames().at(-1)!)).toBeGreaterThan(60);
    term.stream.columns = 40;
    t += 100;
    bus.progress('prune:sparsegpt', 2, 10, 'layer 2 of 10: model.layers.2.self_attn.q_proj.weight', 'layers');
    expect(visibleWidth(term.frames().at(-1)!)).toBeLessThanOrEqual(40);
  });

  it('fitWidth counts what a terminal shows: escapes take no room, wide characters two', () => {
    expect(visibleWidth('\x1b[2mabc\x1b[0m')).toBe(3);
    expect(visibleWidth('剪枝')).toBe(4);
    const cut = fitWidth(`\x1b[2m${'x'.repeat(80)}\x1b[0m`, 20);
    expect(visibleWidth(cut)).toBe(20);
    expect(cut.endsWith('…\x1b[0m')).toBe(true);
    expect(visibleWidth(fitWidth('剪'.repeat(30), 11))).toBeLessThanOrEqual(11);
  });
});
