/**
 * `node:fs` for the page: one in-memory file system per worker (the platform seam for files). The packages read
 * checkpoints by file descriptor and byte range, tokenizers and texts by path, and write models and caches with
 * atomic renames; here those calls act on a tree of Uint8Arrays, so the same package code runs unchanged. The app
 * puts the user's files in (`putFile`) and takes written files out (`takeFile`). Only the calls the Topiary
 * packages make are implemented; others throw an error naming the call.
 */
import { Buffer } from 'buffer';
import { dirname, normalize, resolve } from 'pathe';

interface FileNode {
  kind: 'file';
  data: Uint8Array;
  size: number;
  mtimeMs: number;
}
interface DirNode {
  kind: 'dir';
  mtimeMs: number;
}
type Node = FileNode | DirNode;

const tree = new Map<string, Node>([['/', { kind: 'dir', mtimeMs: Date.now() }]]);
const descriptors = new Map<number, { path: string; position: number; append: boolean }>();
let nextFd = 3;
let tempCounter = 0;

/** A Node-style error with `code`, so the packages' `ioError` reports it as they do under Node. */
class FsError extends Error {
  readonly errno: number;
  constructor(
    readonly code: string,
    syscall: string,
    readonly path: string,
  ) {
    super(`${code}: ${code === 'ENOENT' ? 'no such file or directory' : code === 'EISDIR' ? 'illegal operation on a directory' : code === 'ENOTDIR' ? 'not a directory' : code === 'EEXIST' ? 'file already exists' : 'operation failed'}, ${syscall} '${path}'`);
    this.errno = -1;
  }
}

type PathLike = string | URL | { toString(): string };
function key(path: PathLike): string {
  const text = typeof path === 'string' ? path : path instanceof URL ? path.pathname : path.toString();
  return normalize(resolve('/', text));
}

function node(path: string, syscall: string): Node {
  const found = tree.get(path);
  if (!found) throw new FsError('ENOENT', syscall, path);
  return found;
}

function file(path: string, syscall: string): FileNode {
  const found = node(path, syscall);
  if (found.kind !== 'file') throw new FsError('EISDIR', syscall, path);
  return found;
}

function ensureParent(path: string, syscall: string): void {
  const parent = tree.get(dirname(path));
  if (!parent) throw new FsError('ENOENT', syscall, path);
  if (parent.kind !== 'dir') throw new FsError('ENOTDIR', syscall, path);
}

function toBytes(data: string | ArrayBufferView | ArrayBuffer, encoding?: string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, (encoding ?? 'utf8') as BufferEncoding);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function grow(target: FileNode, size: number): void {
  if (size <= target.data.length) return;
  const bigger = new Uint8Array(Math.max(size, Math.ceil(target.data.length * 1.5)));
  bigger.set(target.data.subarray(0, target.size));
  target.data = bigger;
}

/** What Node's `Stats` and `Dirent` both answer about an entry: its kind (this file system has no links). */
abstract class EntryKind {
  constructor(protected readonly at: Node) {}
  isFile(): boolean {
    return this.at.kind === 'file';
  }
  isDirectory(): boolean {
    return this.at.kind === 'dir';
  }
  isSymbolicLink(): boolean {
    return false;
  }
}

export class Stats extends EntryKind {
  get size(): number {
    return this.at.kind === 'file' ? this.at.size : 0;
  }
  get mtimeMs(): number {
    return this.at.mtimeMs;
  }
  get mtime(): Date {
    return new Date(this.at.mtimeMs);
  }
}

export class Dirent extends EntryKind {
  constructor(
    readonly name: string,
    at: Node,
  ) {
    super(at);
  }
}

// ----------------------------------------------------------------------------- what the app uses

/** Put a file (and its folders) into the page's file system. */
export function putFile(path: string, bytes: Uint8Array): void {
  const at = key(path);
  mkdirSync(dirname(at), { recursive: true });
  tree.set(at, { kind: 'file', data: bytes, size: bytes.length, mtimeMs: Date.now() });
}

/** A written file's bytes (a copy the caller owns). */
export function takeFile(path: string): Uint8Array {
  const f = file(key(path), 'open');
  return f.data.slice(0, f.size);
}

// ----------------------------------------------------------------------------- node:fs

export function existsSync(path: PathLike): boolean {
  return tree.has(key(path));
}

export function statSync(path: PathLike, options?: { throwIfNoEntry?: boolean }): Stats {
  const at = key(path);
  const found = tree.get(at);
  if (!found) {
    if (options?.throwIfNoEntry === false) return undefined as unknown as Stats;
    throw new FsError('ENOENT', 'stat', at);
  }
  return new Stats(found);
}
export const lstatSync = statSync;

export function fstatSync(fd: number): Stats {
  return new Stats(node(descriptor(fd).path, 'fstat'));
}

export function realpathSync(path: PathLike): string {
  const at = key(path);
  node(at, 'realpath');
  return at;
}
realpathSync.native = realpathSync;

export function mkdirSync(path: PathLike, options?: { recursive?: boolean } | number): string | undefined {
  const at = key(path);
  const recursive = typeof options === 'object' && options.recursive === true;
  const existing = tree.get(at);
  if (existing) {
    if (recursive && existing.kind === 'dir') return undefined;
    throw new FsError('EEXIST', 'mkdir', at);
  }
  if (recursive) {
    const parent = dirname(at);
    if (parent !== at && !tree.has(parent)) mkdirSync(parent, { recursive: true });
  } else ensureParent(at, 'mkdir');
  tree.set(at, { kind: 'dir', mtimeMs: Date.now() });
  return at;
}

export function mkdtempSync(prefix: string): string {
  const path = `${prefix}${(tempCounter++).toString(36).padStart(6, '0')}`;
  mkdirSync(path, { recursive: true });
  return key(path);
}

export function readdirSync(path: PathLike, options?: { withFileTypes?: boolean } | string): string[] | Dirent[] {
  const at = key(path);
  if (node(at, 'scandir').kind !== 'dir') throw new FsError('ENOTDIR', 'scandir', at);
  const prefix = at === '/' ? '/' : `${at}/`;
  const names: string[] = [];
  for (const p of tree.keys()) if (p !== at && p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) names.push(p.slice(prefix.length));
  names.sort();
  if (typeof options === 'object' && options.withFileTypes) return names.map((n) => new Dirent(n, tree.get(prefix + n)!));
  return names;
}

export function readFileSync(path: PathLike | number, options?: string | { encoding?: string | null }): Buffer | string {
  const f = typeof path === 'number' ? file(descriptor(path).path, 'read') : file(key(path), 'open');
  const bytes = Buffer.from(f.data.buffer, f.data.byteOffset, f.size);
  const encoding = typeof options === 'string' ? options : options?.encoding;
  return encoding ? bytes.toString(encoding as BufferEncoding) : Buffer.from(bytes);
}

export function writeFileSync(path: PathLike, data: string | ArrayBufferView, options?: string | { encoding?: string }): void {
  const at = key(path);
  ensureParent(at, 'open');
  const bytes = toBytes(data, typeof options === 'string' ? options : options?.encoding);
  const copy = bytes.slice();
  tree.set(at, { kind: 'file', data: copy, size: copy.length, mtimeMs: Date.now() });
}

export function appendFileSync(path: PathLike, data: string | ArrayBufferView): void {
  const at = key(path);
  if (!tree.has(at)) return writeFileSync(at, data);
  const f = file(at, 'open');
  const bytes = toBytes(data);
  grow(f, f.size + bytes.length);
  f.data.set(bytes, f.size);
  f.size += bytes.length;
  f.mtimeMs = Date.now();
}

export function copyFileSync(from: PathLike, to: PathLike): void {
  const f = file(key(from), 'copyfile');
  const at = key(to);
  ensureParent(at, 'copyfile');
  tree.set(at, { kind: 'file', data: f.data.slice(0, f.size), size: f.size, mtimeMs: Date.now() });
}

export function renameSync(from: PathLike, to: PathLike): void {
  const a = key(from);
  const b = key(to);
  node(a, 'rename');
  ensureParent(b, 'rename');
  const moved = [...tree.entries()].filter(([p]) => p === a || p.startsWith(`${a}/`));
  for (const [p] of moved) tree.delete(p);
  for (const [p] of [...tree.entries()]) if (p === b || p.startsWith(`${b}/`)) tree.delete(p);
  for (const [p, n] of moved) tree.set(b + p.slice(a.length), n);
}

export function rmSync(path: PathLike, options?: { recursive?: boolean; force?: boolean }): void {
  const at = key(path);
  const found = tree.get(at);
  if (!found) {
    if (options?.force) return;
    throw new FsError('ENOENT', 'rm', at);
  }
  if (found.kind === 'dir' && !options?.recursive) throw new FsError('EISDIR', 'rm', at);
  for (const p of [...tree.keys()]) if (p === at || p.startsWith(`${at}/`)) tree.delete(p);
}

export function unlinkSync(path: PathLike): void {
  const at = key(path);
  file(at, 'unlink');
  tree.delete(at);
}

function descriptor(fd: number): { path: string; position: number; append: boolean } {
  const d = descriptors.get(fd);
  if (!d) throw new FsError('EBADF', 'fd', String(fd));
  return d;
}

export function openSync(path: PathLike, flags: string | number = 'r'): number {
  const at = key(path);
  const mode = typeof flags === 'number' ? 'r' : flags;
  if (mode.startsWith('r')) {
    file(at, 'open');
  } else {
    ensureParent(at, 'open');
    const existing = tree.get(at);
    if (existing?.kind === 'dir') throw new FsError('EISDIR', 'open', at);
    if (mode.includes('x') && existing) throw new FsError('EEXIST', 'open', at);
    if (!existing || mode.startsWith('w')) tree.set(at, { kind: 'file', data: new Uint8Array(0), size: 0, mtimeMs: Date.now() });
  }
  const fd = nextFd++;
  descriptors.set(fd, { path: at, position: 0, append: mode.startsWith('a') });
  return fd;
}

export function closeSync(fd: number): void {
  descriptors.delete(fd);
}

export function fsyncSync(fd: number): void {
  descriptor(fd);
}
export const fdatasyncSync = fsyncSync;

export function readSync(fd: number, target: ArrayBufferView, offsetOrOptions?: number | { offset?: number; length?: number; position?: number | null }, length?: number, position?: number | bigint | null): number {
  const d = descriptor(fd);
  const f = file(d.path, 'read');
  const o = typeof offsetOrOptions === 'object' ? offsetOrOptions : { offset: offsetOrOptions, length, position: position === undefined ? null : Number(position) };
  const view = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  const offset = o.offset ?? 0;
  const want = o.length ?? view.length - offset;
  const from = o.position === null || o.position === undefined ? d.position : o.position;
  const count = Math.max(0, Math.min(want, f.size - from));
  view.set(f.data.subarray(from, from + count), offset);
  if (o.position === null || o.position === undefined) d.position += count;
  return count;
}

export function writeSync(fd: number, data: ArrayBufferView | string, offsetOrPosition?: number | null, lengthOrEncoding?: number | string, position?: number | null): number {
  const d = descriptor(fd);
  const f = file(d.path, 'write');
  let bytes: Uint8Array;
  let at: number | null | undefined;
  if (typeof data === 'string') {
    bytes = toBytes(data, typeof lengthOrEncoding === 'string' ? lengthOrEncoding : undefined);
    at = offsetOrPosition;
  } else {
    const view = toBytes(data);
    const offset = offsetOrPosition ?? 0;
    const length = typeof lengthOrEncoding === 'number' ? lengthOrEncoding : view.length - offset;
    bytes = view.subarray(offset, offset + length);
    at = position;
  }
  const from = d.append ? f.size : at === null || at === undefined ? d.position : at;
  grow(f, from + bytes.length);
  f.data.set(bytes, from);
  f.size = Math.max(f.size, from + bytes.length);
  f.mtimeMs = Date.now();
  if (at === null || at === undefined) d.position = from + bytes.length;
  return bytes.length;
}

/** Cut a file to `length` bytes, or extend it with zeros. */
function resize(f: FileNode, length: number): void {
  grow(f, length);
  if (length > f.size) f.data.fill(0, f.size, length);
  f.size = length;
  f.mtimeMs = Date.now();
}

export function ftruncateSync(fd: number, length = 0): void {
  resize(file(descriptor(fd).path, 'ftruncate'), length);
}

export function truncateSync(path: PathLike, length = 0): void {
  resize(file(key(path), 'truncate'), length);
}

/** An async iterable of chunks, as the corpus readers consume `createReadStream`. */
export function createReadStream(path: PathLike, options?: { highWaterMark?: number; start?: number; end?: number }): AsyncIterable<Buffer> {
  const at = key(path);
  const chunk = options?.highWaterMark ?? 65536;
  return {
    async *[Symbol.asyncIterator]() {
      const f = file(at, 'open');
      const end = options?.end === undefined ? f.size : Math.min(f.size, options.end + 1);
      for (let from = options?.start ?? 0; from < end; from += chunk) yield Buffer.from(f.data.slice(from, Math.min(end, from + chunk)));
    },
  };
}

function unsupported(name: string): () => never {
  return () => {
    throw new Error(`fs.${name} is not available in the browser`);
  };
}
export const watch = unsupported('watch');
export const createWriteStream = unsupported('createWriteStream');
export const symlinkSync = unsupported('symlinkSync');

export const constants = { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 };

export function accessSync(path: PathLike): void {
  node(key(path), 'access');
}

export const promises = {
  async readFile(path: PathLike, options?: string | { encoding?: string | null }): Promise<Buffer | string> {
    return readFileSync(path, options);
  },
  async writeFile(path: PathLike, data: string | ArrayBufferView, options?: string | { encoding?: string }): Promise<void> {
    writeFileSync(path, data, options);
  },
  async stat(path: PathLike): Promise<Stats> {
    return statSync(path);
  },
  async readdir(path: PathLike, options?: { withFileTypes?: boolean }): Promise<string[] | Dirent[]> {
    return readdirSync(path, options);
  },
  async mkdir(path: PathLike, options?: { recursive?: boolean }): Promise<string | undefined> {
    return mkdirSync(path, options);
  },
  async rm(path: PathLike, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    rmSync(path, options);
  },
  async rename(from: PathLike, to: PathLike): Promise<void> {
    renameSync(from, to);
  },
  async access(path: PathLike): Promise<void> {
    accessSync(path);
  },
};

export default {
  existsSync,
  statSync,
  lstatSync,
  fstatSync,
  realpathSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  appendFileSync,
  copyFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  openSync,
  closeSync,
  fsyncSync,
  fdatasyncSync,
  readSync,
  writeSync,
  ftruncateSync,
  truncateSync,
  createReadStream,
  createWriteStream,
  watch,
  symlinkSync,
  accessSync,
  constants,
  promises,
};
