/**
 * TensorFlow.js's own console output. Under Node without @tensorflow/tfjs-node, tfjs-backend-cpu's first tensor
 * write prints "Hi, looks like you are running TensorFlow.js in Node.js. To speed things up dramatically, install
 * our node backend…" (MathBackendCPU.write, when `env().get('IS_NODE')`), through tfjs-core's `warn()`, which stays
 * silent when the environment flag `PROD` (tfjs's production mode, `tf.enableProdMode()`) is set. Topiary's CLI
 * chooses its backends itself and says which one runs, so the banner is noise on stderr (and `IS_NODE` must stay
 * true: tfjs picks its Node platform from it). tfjs's flags live on its one global engine, so setting the flag
 * through any copy of tfjs reaches every copy. Nothing else is changed: no console method is replaced.
 */
import { createRequire } from 'node:module';

interface TfEnvironment {
  set(flag: string, value: boolean): void;
  getBool(flag: string): boolean;
}

let quieted = false;

/** The tfjs the model code uses (a dependency of @topiary/model-llama, not of the CLI). */
function tensorflow(): { env(): TfEnvironment } {
  const modelPackage = createRequire(import.meta.url).resolve('@topiary/model-llama/package.json');
  return createRequire(modelPackage)('@tensorflow/tfjs-core') as { env(): TfEnvironment };
}

/** Set tfjs's `PROD` flag (once): its banner and console warnings stay off. Returns whether the flag is set. */
export function quietTensorflow(): boolean {
  if (quieted) return true;
  try {
    const env = tensorflow().env();
    env.set('PROD', true);
    quieted = env.getBool('PROD');
  } catch {
    // no tfjs where the model code is: then nothing of it prints either
  }
  return quieted;
}
