/**
 * @topiary/corpus — tokenizers, corpus sources, packing, seeded shuffling, splits, a token cache and the
 * calibration sampler. The default export is the `corpus` plugin (tokenizer factories).
 */
import { corpusPlugin } from './plugin.js';

export { Llama2cTokenizer, parseLlama2cTokenizer, loadLlama2cTokenizer, type Llama2cVocab } from './tokenizers/llama2c.js';
export { HfJsonTokenizer, loadHfTokenizer } from './tokenizers/hf.js';
export { ByteTokenizer } from './tokenizers/bytes.js';
export {
  loadTokenizer,
  findTokenizerIn,
  tokenizerFactories,
  bytesTokenizerFactory,
  hfJsonTokenizerFactory,
  llama2cTokenizerFactory,
} from './tokenizers/load.js';
export { corpusPlugin };
export default corpusPlugin;
export * from './sources.js';
export * from './tokens.js';
export * from './calibration.js';
