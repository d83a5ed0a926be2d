/**
 * bench/gpu/check.sh, the parts that need no GPU: it finds no NVIDIA driver and says so; with a driver (a stand-in
 * nvidia-smi) it names the GPU and goes on to Node.js, refusing one that is not there. The whole run (conformance +
 * benchmarks + table) is `bench/gpu/check.sh --skip-driver-check --quick` (about a minute here, WebGL on llvmpipe).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const script = resolve(__dirname, '../../bench/gpu/check.sh');
const hasNvidiaSmi = spawnSync('bash', ['-c', 'command -v nvidia-smi'], { encoding: 'utf8' }).status === 0;
if (hasNvidiaSmi) console.log('skipped: check.sh without a driver — this machine has nvidia-smi');

function check(args: string[], path = process.env.PATH ?? ''): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', env: { ...process.env, PATH: path, TOPIARY_NODE: '' }, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bench/gpu/check.sh', () => {
  it('--help says how to run it', () => {
    const r = check(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--skip-driver-check');
    expect(r.stdout).toContain('--node PATH');
  });

  it.skipIf(hasNvidiaSmi)('without an NVIDIA driver: says there is no nvidia-smi, exit 2', () => {
    const r = check([]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no nvidia-smi on PATH: the NVIDIA driver is not installed here');
    expect(r.stderr).toContain('--skip-driver-check');
  });

  it('with a driver (a stand-in nvidia-smi): names the GPU, then refuses a Node.js that is not there, exit 2', () => {
    const bin = mkdtempSync(join(tmpdir(), 'topiary-fake-smi-'));
    writeFileSync(
      join(bin, 'nvidia-smi'),
      '#!/bin/sh\nif [ "$1" = "--query-gpu=name,driver_version,memory.total" ]; then echo "NVIDIA H100 80GB HBM3, 580.65.06, 81559 MiB"; else echo "| NVIDIA-SMI 580.65.06   Driver Version: 580.65.06   CUDA Version: 13.0 |"; fi\n',
    );
    chmodSync(join(bin, 'nvidia-smi'), 0o755);
    const r = check(['--node', '/nonexistent/bin/node'], `${bin}${delimiter}${process.env.PATH ?? ''}`);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('driver: NVIDIA H100 80GB HBM3, 580.65.06, 81559 MiB');
    expect(r.stderr).toContain("driver's CUDA version: 13.0");
    expect(r.stderr).toContain('no Node.js: bring one along');
  });
});
