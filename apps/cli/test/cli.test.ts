import { describe, expect, it, vi } from 'vitest';
import { runCli } from './helpers.js';

const run = runCli;

describe('topiary CLI', () => {
  it('--help lists commands, exit codes and examples', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: topiary');
    expect(r.stdout).toContain('plugins');
    expect(r.stdout).toContain('Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error');
  });

  it('an unknown command is a usage error (exit 2)', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });

  it('a bad global flag value is a usage error', async () => {
    const r = await run(['--seed', '-1', 'plugins']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('must be a non-negative integer');
  });

  it('usage errors inside a subcommand also exit 2 (missing required option)', async () => {
    const r = await run(['inspect']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--model');
  });

  it('plugins --json prints one JSON object with the kernel version', async () => {
    const r = await run(['--json', 'plugins']);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { kernel: string; plugins: { name: string }[] };
    expect(body.kernel).toMatch(/^\d+\.\d+\.\d+/);
    expect(Array.isArray(body.plugins)).toBe(true);
  });
});
