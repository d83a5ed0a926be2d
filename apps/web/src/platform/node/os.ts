/** `node:os` for the page: what the packages ask (temporary and home folders in the page's file system, cores). */
const cores = (): number => Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);

export const tmpdir = (): string => '/tmp';
export const homedir = (): string => '/home/page';
export const hostname = (): string => 'browser';
export const platform = (): string => 'browser';
export const availableParallelism = cores;
export const cpus = (): Array<{ model: string; speed: number }> => Array.from({ length: cores() }, () => ({ model: 'browser', speed: 0 }));
export const totalmem = (): number => 0;
export const freemem = (): number => 0;
export const EOL = '\n';
export default { tmpdir, homedir, hostname, platform, availableParallelism, cpus, totalmem, freemem, EOL };
