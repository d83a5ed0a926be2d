import { describe, expect, it } from 'vitest';
import { EventBus } from '@topiary/kernel';
import { renderJsonLines, renderTty } from '../src/render.js';

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

