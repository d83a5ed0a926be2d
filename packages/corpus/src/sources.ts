/**
 * Corpus sources. Every source streams: files are read in chunks (64 KiB by default) and decoded with a fatal
 * UTF-8 decoder, so files larger than memory work and non-UTF-8 bytes stop the run with E_DATA and the byte offset.
 *
 * - text, split `blank-lines` (default): documents are the blocks between blank lines (a line holding only
 *   spaces/tabs/CR counts as blank); each document is trimmed of leading/trailing newlines; CRLF becomes LF.
 * - text, split `file`: the whole file is one document (still read in chunks; the document itself is one string).
 * - JSON lines: one JSON object per non-empty line; the document is the string at `field` (default `text`).
 *   Malformed lines and missing fields are E_DATA errors naming the file and line number.
 * - a folder: its files in sorted path order (recursively), `.jsonl` files as JSON lines, every other file
 *   with one of `extensions` as text.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ioError, TopiaryError, type Corpus } from '@topiary/kernel';

export type TextSplit = 'blank-lines' | 'file';

export interface SourceOptions {
  /** How a text file becomes documents. Default `blank-lines`. */
  split?: TextSplit;
  /** The JSON field holding the text of a JSON-lines document. Default `text`. */
  field?: string;
  /** File extensions a folder source reads as text (with the dot). Default `.txt`, `.md`, `.text`, `.raw`. */
  extensions?: readonly string[];
  /** Bytes per read. Default 65536. */
  chunkSize?: number;
}

/** Offset of the first byte that makes `bytes` invalid UTF-8, or -1 if it is valid (a truncated tail counts as invalid). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= bytes.length) return i; // truncated character
    let cp = b & (0xff >> (need + 2));
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Length of the longest prefix of `bytes` that does not end inside a (possibly valid) multi-byte character. */
function completePrefix(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/** Stream a file as UTF-8 text chunks; throws E_DATA with the byte offset at the first invalid byte. */
export async function* readTextChunks(path: string, chunkSize = 65536): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let first = true;
  let carry: Uint8Array = new Uint8Array(0);
  let offset = 0; // file offset of carry[0]
  let stream;
  try {
    stream = createReadStream(path, { highWaterMark: chunkSize });
  } catch (e) {
    throw ioError(e, path, 'read');
  }
  const fail = (bytes: Uint8Array, base: number): never => {
    const at = firstInvalidUtf8(bytes);
    throw new TopiaryError('E_DATA', `not valid UTF-8: invalid byte 0x${(bytes[Math.max(0, at)] ?? 0).toString(16).padStart(2, '0')} at byte offset ${base + Math.max(0, at)}`, {
      file: path,
      hint: 'convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)',
    });
  };
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      const bytes = carry.length > 0 ? Buffer.concat([carry, piece]) : piece;
      const cut = completePrefix(bytes);
      const head = bytes.subarray(0, cut);
      let text: string;
      try {
        text = decoder.decode(head);
      } catch {
        fail(head, offset);
      }
      if (first && text!.startsWith('\uFEFF')) text = text!.slice(1); // a byte-order mark is not text
      if (head.length > 0) first = false;
      yield text!;
      carry = Uint8Array.from(bytes.subarray(cut));
      offset += cut;
    }
  } catch (e) {
    if (e instanceof TopiaryError) throw e;
    throw ioError(e, path, 'read');
  }
  if (carry.length > 0) fail(carry, offset);
}

/** Split streamed text into blank-line separated documents. */
async function* blankLineDocuments(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  let buffer = '';
  const separator = /\n[ \t\r]*\n/g;
  const clean = (s: string) => s.replace(/\r\n/g, '\n').replace(/^[\r\n]+|[\r\n]+$/g, '');
  for await (const chunk of chunks) {
    buffer += chunk;
    let start = 0;
    separator.lastIndex = 0;
    for (;;) {
      const m = separator.exec(buffer);
      // Keep the last separator's run open: more blank lines may follow in the next chunk.
      if (!m || m.index + m[0].length >= buffer.length) break;
      const doc = clean(buffer.slice(start, m.index));
      start = m.index + m[0].length;
      separator.lastIndex = start;
      if (doc.trim() !== '') yield doc;
    }
    buffer = buffer.slice(start);
  }
  const last = clean(buffer);
  if (last.trim() !== '') yield last;
}

export function textFileCorpus(path: string, options: SourceOptions = {}): Corpus {
  const split = options.split ?? 'blank-lines';
  return {
    name: path,
    async *documents() {
      const chunks = readTextChunks(path, options.chunkSize);
      if (split === 'file') {
        let all = '';
        for await (const c of chunks) all += c;
        all = all.replace(/\r\n/g, '\n');
        if (all.trim() !== '') yield all;
        return;
      }
      yield* blankLineDocuments(chunks);
    },
  };
}

/** Stream lines of a UTF-8 file with their 1-based numbers. */
export async function* readLines(path: string, chunkSize?: number): AsyncGenerator<{ line: string; number: number }> {
  let buffer = '';
  let number = 0;
  for await (const chunk of readTextChunks(path, chunkSize)) {
    buffer += chunk;
    let start = 0; // a cursor, so each chunk is copied once, not once per line
    let nl: number;
    while ((nl = buffer.indexOf('\n', start)) >= 0) {
      number++;
      yield { line: buffer.slice(start, nl).replace(/\r$/, ''), number };
      start = nl + 1;
    }
    buffer = buffer.slice(start);
  }
  if (buffer !== '') yield { line: buffer.replace(/\r$/, ''), number: number + 1 };
}

/** Parse JSON lines, each an object; errors name the file and the line number. Blank lines are skipped. */
export async function* readJsonLines(path: string, chunkSize?: number): AsyncGenerator<{ value: Record<string, unknown>; line: number }> {
  for await (const { line, number } of readLines(path, chunkSize)) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new TopiaryError('E_DATA', `malformed JSON on line ${number}: ${(e as Error).message}`, { file: path, where: `line ${number}` });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TopiaryError('E_DATA', `line ${number} is not a JSON object`, { file: path, where: `line ${number}` });
    }
    yield { value: value as Record<string, unknown>, line: number };
  }
}

export function jsonlCorpus(path: string, options: SourceOptions = {}): Corpus {
  const field = options.field ?? 'text';
  return {
    name: path,
    async *documents() {
      for await (const { value, line } of readJsonLines(path, options.chunkSize)) {
        const text = value[field];
        if (typeof text !== 'string') {
          throw new TopiaryError('E_DATA', `line ${line} has no string field "${field}"`, {
            file: path,
            where: `line ${line}`,
            hint: `choose the field holding the text (found: ${Object.keys(value).join(', ') || 'none'})`,
          });
        }
        if (text.trim() !== '') yield text;
      }
    },
  };
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) for (const f of listFiles(full)) out.push(f);
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

const isJsonl = (path: string) => ['.jsonl', '.ndjson'].includes(extname(path).toLowerCase());

export function folderCorpus(dir: string, options: SourceOptions = {}): Corpus {
  const extensions = (options.extensions ?? ['.txt', '.md', '.text', '.raw']).map((e) => e.toLowerCase());
  return {
    name: dir,
    async *documents() {
      const files = listFiles(dir).filter((f) => isJsonl(f) || extensions.includes(extname(f).toLowerCase()));
      if (files.length === 0) {
        throw new TopiaryError('E_DATA', `no corpus files in this folder (looked for .jsonl and ${extensions.join(', ')})`, { file: dir });
      }
      for (const f of files) yield* (isJsonl(f) ? jsonlCorpus(f, options) : textFileCorpus(f, options)).documents();
    },
  };
}

/** A corpus from a path: a folder, a `.jsonl` file, or a text file. */
export function openCorpus(path: string, options: SourceOptions = {}): Corpus {
  let stat;
  try {
    stat = statSync(path);
  } catch (e) {
    throw ioError(e, path, 'open the corpus');
  }
  if (stat.isDirectory()) return folderCorpus(path, options);
  return isJsonl(path) ? jsonlCorpus(path, options) : textFileCorpus(path, options);
}
