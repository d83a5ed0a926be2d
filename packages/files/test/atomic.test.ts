import * as fs from 'node:fs';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '../src/index.js';

// Fault injection for failures that no permission bit can cause (root ignores them): node:fs passes through to the
// real module unless a test sets `faults.writeSync`.
const faults = vi.hoisted(() => ({ writeSync: undefined as ((...args: unknown[]) => number) | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeSync = (...args: unknown[]): number => (faults.writeSync ?? (real.writeSync as (...a: unknown[]) => number))(...args);
  return { ...real, default: { ...real, writeSync }, writeSync };
});
afterEach(() => {
  faults.writeSync = undefined;
});

/** The typed error a failed atomic write must raise: TopiaryError E_IO naming `where`. */
function expectIoError(fn: () => unknown, where: string): TopiaryError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(TopiaryError);
  const err = thrown as TopiaryError;
  expect(err.code).toBe('E_IO');
  expect(err.where).toBe(where);
  expect(err.describe()).toContain(where);
  return err;
}

/** Temp files (`.NAME.PID.TIME.tmp`) of atomic writes left in a folder. */
const leftovers = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.tmp'));

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
      // root ignores permission bits: make the write fail in ways root cannot override instead
      // (1) no previous file; the destination's parent is a file, so the folder cannot be created
      const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
      writeFileSync(join(dir, 'file'), 'x');
      const bad = join(dir, 'file', 'child.json');
      expectIoError(() => writeJsonAtomic(bad, {}), join(dir, 'file'));
      expect(existsSync(bad)).toBe(false);
      expect(readdirSync(dir)).toEqual(['file']);
      expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('x');
      // (2) the temp file is written in full, then the rename fails: the destination is a folder with content
      const taken = join(dir, 'taken.json');
      mkdirSync(taken);
      writeFileSync(join(taken, 'inside.txt'), 'still here');
      expectIoError(() => writeJsonAtomic(taken, { v: 2 }), taken);
      expect(readdirSync(taken)).toEqual(['inside.txt']);
      expect(readFileSync(join(taken, 'inside.txt'), 'utf8')).toBe('still here');
      expect(leftovers(dir)).toEqual([]);
      expect(readdirSync(dir).sort()).toEqual(['file', 'taken.json']);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
    const path = join(dir, 'keep.json');
    writeJsonAtomic(path, { v: 1 });
    chmodSync(dir, 0o500);
    try {
      expectIoError(() => writeJsonAtomic(path, { v: 2 }), path);
      expect(leftovers(dir)).toEqual([]);
    } finally {
      chmodSync(dir, 0o700);
    }
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ v: 1 });
    expect(readdirSync(dir)).toEqual(['keep.json']);
  });

  it('a disk that fills up mid-write keeps the old file (or none), raises E_IO naming the path, leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-atomic-'));
    const path = join(dir, 'keep.bin');
    writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    const fresh = join(dir, 'fresh.bin');
    // the first chunk lands in the temp file, the second one finds the disk full
    let calls = 0;
    faults.writeSync = (...args: unknown[]) => {
      if (++calls > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      return (fs.writeSync as (...a: unknown[]) => number)(...args);
    };
    const err = expectIoError(() => writeFileAtomic(path, [new Uint8Array(1000).fill(7), new Uint8Array(1000).fill(8)]), path);
    expect(err.message).toContain('no space left on device');
    expect(calls).toBe(2);
    expect(Array.from(readFileSync(path))).toEqual([1, 2, 3]);
    calls = 0;
    expectIoError(() => writeFileAtomic(fresh, ['first chunk', 'second chunk']), fresh);
    expect(existsSync(fresh)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['keep.bin']);
  });
});
