/**
 * @topiary/model-llama — the LLaMA causal language model (tfjs), its coupled parameter groups, masks and slimming,
 * training (AdamW), generation (KV cache), and llama2.c / Hugging Face safetensors formats.
 */
import { modelLlamaPlugin } from './plugin.js';

export { LlamaModel, createLlama, parameterShapes, type CreateOptions, type KvCache, type ModelOptions, type Residency } from './model.js';
export { openWeights } from './io.js';
export { checkWholeModelFits, float32Bytes, WASM_HEAP_BYTES } from './fits.js';
export { MemorySource, SafetensorsSource, openShard, type WeightSource } from './formats/source.js';
export { ShardedWriter, PROGRESS_FILE, SINGLE_FILE_BYTES, type ShardedWriterOptions } from './formats/sharded.js';
export { isWeightFile, shardName } from './formats/layout.js';
export { Overlay, prepareSpillDir, DEFAULT_MAX_MEMORY, type SpillOptions } from './residency.js';
export {
  makeConfig,
  validateConfig,
  layerShape,
  headKvMap,
  isUniform,
  configFromHf,
  configToHf,
  TOPIARY_LAYERS_KEY,
  SUPPORTED_ROPE_TYPES,
  familyFields,
  type CreateConfig,
  type LlamaConfig,
  type ModelFamily,
  type RopeScaling,
} from './config.js';
export { attention, causalMask, crossEntropy, distillationRows, embedding, linear2d, linearCrossEntropy, type Distillation, type TeacherHead, rmsNorm, rope, ropeInvFreq, ropeTables, softmaxCrossEntropyRows, swiglu } from './ops.js';
export { computeGroups, cutTake, groupCounts, groupId, slimGroupMapping, slimPlan, slimWeights, type SlimPlan, type SlimResult, type SlimTake } from './groups.js';
export { SlimmableStream } from './streamed-slim.js';
export { AdamW, trainStep, lossAndGrads, type AdamWOptions, type AdamWState, type StepResult } from './optim.js';
export { generate, sampleToken, type GenerateOptions } from './generate.js';
export { loadModel, saveModel, detectModelFormat, looksLikePickle, checkTokenizer, llama2cFormat, safetensorsFormat, type LoadOptions, type ModelFileKind } from './io.js';
export { openHf, readHf, writeHf, readHfConfig, type SaveOptions } from './formats/hf.js';
export { Llama2cSource, readLlama2c, readLlama2cHeader, interleavedToRotateHalf, LLAMA2C_MAGIC, type Llama2cHeader } from './formats/llama2c.js';
export {
  readSafetensorsIndex,
  readTensor,
  readTensors,
  writeSafetensors,
  floatToHalf,
  halfToFloat,
  floatToBf16,
  bf16ToFloat,
  encodeTensor,
  writeHeaderOnlySafetensors,
  type WritableDtype,
  type SafetensorsIndex,
  type TensorEntry,
  type TensorToWrite,
} from './formats/safetensors.js';
export { rememberDtype, loadedDtype, storageDtypeOf, safetensorsDtype, STORAGE_DTYPES, type StorageDtype } from './formats/dtype.js';
export { analyseSparsity, combineSparsity, layerSparsity, followsNM, TOPIARY_SPARSITY_KEY, NOTABLE_SPARSITY, NM_PATTERNS, type SparsityInfo } from './formats/sparsity.js';
export { padToUniform, paddedSizes, type PaddedModel } from './formats/padded.js';
export {
  writeGguf,
  readGguf,
  readGgufTensor,
  ggufToHfWeights,
  ggufRefusal,
  ggufVocabFromPieces,
  permuteForGguf,
  unpermuteFromGguf,
  quantizeQ8_0,
  ggmlBytes,
  GGUF_DTYPES,
  GGUF_MAGIC,
  GGUF_VERSION,
  GGUF_ALIGNMENT,
  GgufType,
  GgmlType,
  TokenType,
  type GgufDtype,
  type GgufValue,
  type GgufVocab,
  type GgufFile,
  type GgufTensorInfo,
  type GgufExportOptions,
  type GgufExportResult,
} from './formats/gguf.js';
export * from './names.js';
export { modelLlamaPlugin };
export default modelLlamaPlugin;
