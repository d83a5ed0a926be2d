/**
 * `topiary` as a Unix tool, spawned from its build (apps/cli/dist, as a user runs it): a reader that leaves early
 * (`topiary plugins | head -1`) ends it quietly with status 0, and TensorFlow.js's Node banner never shows.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handleClosedPipes, isClosedPipe } from '../src/pipes.js';

const repo = resolve(__dirname, '../../..');
const bin = join(repo, 'apps/cli/dist/bin.js');
const built = existsSync(bin);
const model = join(repo, 'assets/models/stories260K-hf');

interface Spawned {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run the built CLI. `stdout`: 'keep' reads all of it; 'first-line' closes the pipe as soon as a whole line came
 * (what `| head -1` does); 'closed' closes it before the CLI writes anything. `stderr` likewise ('keep' | 'closed').
 */
function topiary(args: string[], mode: { stdout?: 'keep' | 'first-line' | 'closed'; stderr?: 'keep' | 'closed' } = {}): Promise<Spawned> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    if (mode.stdout === 'closed') child.stdout.destroy();
    else {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (mode.stdout === 'first-line' && stdout.includes('\n')) {
          stdout = stdout.slice(0, stdout.indexOf('\n') + 1);
          child.stdout.destroy();
        }
      });
    }
    if (mode.stderr === 'closed') child.stderr.destroy();
    else child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

const NO_TRACE = /EPIPE|Unhandled 'error' event|^\s+at /m;

describe.skipIf(!built)('a reader that leaves early (EPIPE)', () => {
  it('topiary plugins | head -1: the first line, then a quiet exit 0 (no stack trace)', async () => {
    const r = await topiary(['plugins'], { stdout: 'first-line' });
    expect(r.stdout).toMatch(/^kernel \d+\.\d+\.\d+; \d+ plugin\(s\) installed\n$/);
    expect(r.stderr).not.toMatch(NO_TRACE);
    expect(r.code).toBe(0);
  });

  it('topiary --help | head -1: the usage line, then a quiet exit 0', async () => {
    const r = await topiary(['--help'], { stdout: 'first-line' });
    expect(r.stdout).toBe('Usage: topiary [options] [command]\n');
    expect(r.stderr).not.toMatch(NO_TRACE);
    expect(r.code).toBe(0);
  });

  it.each([[['plugins']], [['--json', 'plugins']], [['--help']], [['recipe-schema']], [['inspect', '--model', model]]])(
    'stdout closed before the first write (%j): exit 0, nothing on stderr',
    async (args) => {
      const r = await topiary(args, { stdout: 'closed' });
      expect(r.stderr).not.toMatch(NO_TRACE);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    },
  );

  it('stderr closed: the command goes on and keeps its own status (a usage error still exits 2, a listing 0)', async () => {
    expect((await topiary(['prune', '--bogus'], { stderr: 'closed' })).code).toBe(2);
    const listing = await topiary(['plugins'], { stderr: 'closed' });
    expect(listing.code).toBe(0);
    expect(listing.stdout).toContain('backend-wasm');
  });
});

describe('closed-pipe handling (unit)', () => {
  it('a closed stdout exits 0; a closed stderr is ignored; other errors are thrown', () => {
    const stdout = new EventEmitter();
    const stderr = new EventEmitter();
    const exits: number[] = [];
    handleClosedPipes({ stdout, stderr }, (code) => exits.push(code));
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    stderr.emit('error', epipe);
    expect(exits).toEqual([]);
    stdout.emit('error', epipe);
    expect(exits).toEqual([0]);
    expect(() => stdout.emit('error', Object.assign(new Error('disk'), { code: 'EIO' }))).toThrow('disk');
    expect(isClosedPipe(Object.assign(new Error('gone'), { code: 'ERR_STREAM_DESTROYED' }))).toBe(true);
  });
});

describe.skipIf(!built)("TensorFlow.js's Node banner", () => {
  const BANNER = /Hi, looks like you are running TensorFlow\.js in Node\.js|={10,}/;

  it('inspect prints the model and no banner, on stdout or stderr', async () => {
    const r = await topiary(['inspect', '--model', model]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('stories260K-hf (hf, float32)');
    expect(r.stdout).not.toMatch(BANNER);
    expect(r.stderr).not.toMatch(BANNER);
  });

  it('nor a command that computes on a backend (generate)', async () => {
    const r = await topiary(['--backend', 'cpu', 'generate', '--model', model, '--prompt', 'Once', '--max-tokens', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(BANNER);
  });
});
