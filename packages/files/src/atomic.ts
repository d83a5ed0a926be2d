/**
 * Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder. A reader sees the old file
 * or the new one, never half of one. Every model, checkpoint and result file goes through here.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { ioError } from '@topiary/kernel';

/** Flush a folder's entries (after a rename into it), so the rename survives a crash; best effort. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* some file systems refuse fsync on folders; the rename is still atomic */
  }
}

/**
 * Write `chunks` (strings or byte arrays) to `path` atomically. Any iterable will do — a generator producing the
 * bytes piece by piece writes a file far larger than memory.
 */
export function writeFileAtomic(path: string, chunks: string | Uint8Array | Iterable<string | Uint8Array>): void {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw ioError(e, dir, 'create the folder');
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const list: Iterable<string | Uint8Array> = typeof chunks === 'string' || chunks instanceof Uint8Array ? [chunks] : chunks;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of list) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    rmSync(tmp, { force: true });
    throw ioError(e, path, 'write');
  }
  fsyncDir(dir);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
