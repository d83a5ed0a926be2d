import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventBus, renderJsonLines, renderTty, TopiaryError, writeFileAtomic, writeJsonAtomic } from '../src/index.js';

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

describe('atomic writes', () => {
  it('writes the whole file and leaves no temp files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
    const path = join(dir, 'sub', 'a.bin');
    writeFileAtomic(path, [new Uint8Array([1, 2, 3]), 'xyz']);
    expect(Array.from(readFileSync(path))).toEqual([1, 2, 3, 120, 121, 122]);
    writeJsonAtomic(join(dir, 'r.json'), { a: 1 });
    expect(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'))).toEqual({ a: 1 });
    expect(readdirSync(join(dir, 'sub'))).toEqual(['a.bin']);
  });

  it('a failed write keeps the old file and raises E_IO naming the path', () => {
    if (process.getuid?.() === 0) {
      // root ignores permission bits; simulate a failure with a path whose parent is a file instead
      const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
      writeFileSync(join(dir, 'file'), 'x');
      const bad = join(dir, 'file', 'child.json');
      expect(() => writeJsonAtomic(bad, {})).toThrow(TopiaryError);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
    const path = join(dir, 'keep.json');
    writeJsonAtomic(path, { v: 1 });
    chmodSync(dir, 0o500);
    try {
      expect(() => writeJsonAtomic(path, { v: 2 })).toThrow(expect.objectContaining({ code: 'E_IO', where: path }));
    } finally {
      chmodSync(dir, 0o700);
    }
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ v: 1 });
    expect(existsSync(path)).toBe(true);
  });
});
