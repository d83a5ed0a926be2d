/**
 * The page's platform seam, checked in Node against Node's own modules: the in-memory file system behaves as
 * `node:fs` does for the calls the packages make, and the synchronous sha256 equals `node:crypto`'s.
 */
import { createHash as nodeHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createHash } from '../src/platform/node/crypto.js';
import * as fs from '../src/platform/node/fs.js';

describe('the page’s sha256', () => {
  it('equals node:crypto for lengths around the block edges and for streamed updates', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(nodeHash('sha256').update(bytes).digest('hex'));
      const streamed = createHash('sha256');
      for (let at = 0; at < n; at += 777) streamed.update(bytes.subarray(at, at + 777));
      expect(streamed.digest('hex')).toBe(nodeHash('sha256').update(bytes).digest('hex'));
    }
    expect(createHash('sha256').update('héllo wörld', 'utf8').digest('hex')).toBe(nodeHash('sha256').update('héllo wörld', 'utf8').digest('hex'));
  });
});

describe('the page’s in-memory node:fs', () => {
  it('reads by descriptor and byte range, writes past the end, stats sizes', () => {
    fs.putFile('/t/a/model.bin', Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    const fd = fs.openSync('/t/a/model.bin', 'r');
    const into = Buffer.alloc(4);
    expect(fs.readSync(fd, into, 0, 4, 3)).toBe(4);
    expect([...into]).toEqual([4, 5, 6, 7]);
    expect(fs.readSync(fd, into, 0, 4, 6)).toBe(2); // short read at the end, as Node's
    expect(fs.fstatSync(fd).size).toBe(8);
    fs.closeSync(fd);
    const out = fs.openSync('/t/a/out.bin', 'w');
    fs.writeSync(out, Buffer.from([9, 9]));
    fs.writeSync(out, Buffer.from([7]), 0, 1, 5);
    fs.closeSync(out);
    expect([...fs.takeFile('/t/a/out.bin')]).toEqual([9, 9, 0, 0, 0, 7]);
    // truncate by path (a header-only checkpoint extends its file with zeros): shrink, then extend
    fs.putFile('/t/a/sparse.bin', Uint8Array.from([1, 2, 3]));
    fs.truncateSync('/t/a/sparse.bin', 2);
    fs.truncateSync('/t/a/sparse.bin', 5);
    expect([...fs.takeFile('/t/a/sparse.bin')]).toEqual([1, 2, 0, 0, 0]);
    expect(() => fs.truncateSync('/t/a/none.bin', 1)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(fs.statSync('/t/a').isDirectory()).toBe(true);
    expect(fs.readFileSync('/t/a/model.bin').length).toBe(8);
  });

  it('folders: mkdir -p, readdir (names and Dirents, sorted), rename of a folder, rm -r; errors carry Node codes', async () => {
    fs.mkdirSync('/t/b/c', { recursive: true });
    fs.writeFileSync('/t/b/c/z.json', '{"a":1}');
    fs.writeFileSync('/t/b/c/y.txt', 'text');
    expect(fs.readdirSync('/t/b/c')).toEqual(['y.txt', 'z.json']);
    expect((fs.readdirSync('/t/b', { withFileTypes: true }) as fs.Dirent[]).map((d) => [d.name, d.isDirectory()])).toEqual([['c', true]]);
    fs.renameSync('/t/b/c', '/t/b/d');
    expect(fs.readFileSync('/t/b/d/z.json', 'utf8')).toBe('{"a":1}');
    expect(fs.existsSync('/t/b/c/z.json')).toBe(false);
    expect(await fs.promises.readFile('/t/b/d/y.txt', 'utf8')).toBe('text');
    fs.rmSync('/t/b', { recursive: true, force: true });
    expect(fs.existsSync('/t/b/d')).toBe(false);
    expect(() => fs.openSync('/t/missing.bin', 'r')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => fs.writeFileSync('/nowhere/x.txt', 'x')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('streams a file in chunks (as the corpus reader consumes createReadStream)', async () => {
    fs.putFile('/t/text.txt', new TextEncoder().encode('abcdefghij'));
    const chunks: string[] = [];
    for await (const chunk of fs.createReadStream('/t/text.txt', { highWaterMark: 4 })) chunks.push(chunk.toString());
    expect(chunks).toEqual(['abcd', 'efgh', 'ij']);
  });
});
