/** The queue's address: what a URL may be, and an unreachable queue said within seconds, naming the URL. */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { checkQueue, jobIdOf, parseQueueUrl, shownUrl } from '../src/index.js';

/** A loopback port nothing listens on (taken, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

describe('queue URLs', () => {
  it('reads redis:// URLs and refuses anything else naming --queue', () => {
    expect(parseQueueUrl('redis://127.0.0.1:6390/2')).toMatchObject({ host: '127.0.0.1', port: 6390, db: 2, tls: false });
    expect(parseQueueUrl('rediss://user:p%40ss@queue.lab')).toMatchObject({ host: 'queue.lab', port: 6379, db: 0, tls: true, username: 'user', password: 'p@ss' });
    expect(shownUrl(parseQueueUrl('redis://:secret@h:1'))).toBe('redis://:***@h:1');
    for (const [url, text] of [
      ['localhost:6379', 'not supported'],
      ['not a url', 'is not a queue URL'],
      ['amqp://h:5672', 'amqp:// queues are not supported'],
      ['redis://h:1/x', 'must be a number'],
    ] as const) {
      const error = (() => {
        try {
          parseQueueUrl(url);
        } catch (e) {
          return e as TopiaryError;
        }
        return undefined;
      })();
      expect(error, url).toBeInstanceOf(TopiaryError);
      expect(error!.where).toBe('--queue');
      expect(error!.message).toContain(text);
    }
    expect(jobIdOf({ id: 'sweep-ab12' }, { id: 'method-wanda_sparsity-0.5' })).not.toContain(':');
  });

  it('says an unreachable queue within a few seconds, naming its URL', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const started = performance.now();
    const error = await checkQueue(url).then(
      () => undefined,
      (e: unknown) => e as TopiaryError,
    );
    const seconds = (performance.now() - started) / 1000;
    expect(error).toBeInstanceOf(TopiaryError);
    expect(error!.code).toBe('E_IO');
    expect(error!.where).toBe('--queue');
    expect(error!.message).toContain(`cannot reach the queue at ${url}`);
    expect(error!.hint).toContain('redis-server');
    expect(seconds).toBeLessThan(5);
  });
});
