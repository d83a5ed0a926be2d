/**
 * What the page's worker does, on the same packages as the CLI: the model and tokenizer are loaded by the
 * pipeline's `loadModelWithTokenizer` from files the user picked (put into the worker's in-memory file system),
 * calibration windows are drawn by `calibrationWindows`, the prune runs through `runPruneStage` with the installed
 * pruners registered in a run container, perplexity is `evaluatePerplexity`, and downloads are `saveModel` /
 * `writeGguf` output read back from the file system. Nothing here computes what a package already does.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import plainWasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import simdWasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import threadedWasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { WasmBackend, sharedGemmPool } from '@topiary/backend-wasm';
import { browserGemmPlatform } from '@topiary/backend-wasm/browser';
import { EventBus, PluginHost, TopiaryError, Tokens, createContainer, optionFields, coerceFlagValue, resolveAllOrNone, type DependencyContainer, type Pruner, type Raw, type Tokenizer } from '@topiary/kernel';
import { evaluatePerplexity } from '@topiary/eval';
import { generate, ggufRefusal, loadedDtype, openWeights, parameterShapes, writeGguf, type LlamaConfig, type LlamaModel } from '@topiary/model-llama';
import { architectureOf, ggufVocab, loadModelWithTokenizer, resolveCalibrationSize, runPruneStage, saveModelWithTokenizer, type StageEnv } from '@topiary/pipeline';
import magnitude from '@topiary/pruner-magnitude';
import wanda from '@topiary/pruner-wanda';
import sparsegpt from '@topiary/pruner-sparsegpt';
import llmPruner from '@topiary/pruner-llm-pruner';
import depth from '@topiary/pruner-depth';
import saliencyBasic from '@topiary/saliency-basic';
import saliencyTaylor from '@topiary/saliency-taylor';
import { sparsityBars, widthBars } from '@topiary/report';
import { putFile, readdirSync, rmSync, takeFile } from './platform/node/fs.js';
import type { DownloadFile, EngineInfo, LayerRow, ModelSummary, PerplexitySummary, PickedFile, PruneSummary } from './protocol.js';

/** The installed plugins, registered explicitly (in Node they are discovered from package.json at run time). */
export const INSTALLED_PLUGINS = [magnitude, wanda, sparsegpt, llmPruner, depth, saliencyBasic, saliencyTaylor];

/**
 * Float32 bytes of one model the page takes at most by default: the original and the pruned copy both live on
 * tfjs's WebAssembly heap, which cannot grow past 4 GiB (wasm32), beside the activations of a pass.
 */
export const DEFAULT_MEMORY_LIMIT = 2 ** 30;

const TOKENIZER_NAME = /^(tokenizer\.(json|bin|model)|tok[^/]*\.bin)$/i;

export interface Reporter {
  progress(task: string, current: number, total: number, info?: string): void;
  token(text: string): void;
  log(level: string, message: string): void;
}

interface Loaded {
  label: string;
  /** The folder of the worker's file system holding the picked files. */
  dir: string;
  format: string;
  model: LlamaModel;
  tokenizer: Tokenizer;
  tokenizerPath: string;
  modelPath: string;
}

export class Engine {
  private container: DependencyContainer | undefined;
  private backend: WasmBackend | undefined;
  private original: Loaded | undefined;
  private pruned: LlamaModel | undefined;
  private opened = 0;
  private readonly events = new EventBus();

  constructor(private readonly report: Reporter) {
    let last = 0;
    this.events.on('progress', (e) => {
      const now = Date.now();
      if (e.current !== e.total && now - last < 50) return;
      last = now;
      this.report.progress(e.task, e.current, e.total, e.info);
    });
    this.events.on('log', (e) => this.report.log(e.level, e.message));
  }

  async init(threads?: number): Promise<EngineInfo> {
    // tfjs-wasm's own threads stay off (its pthreads would start from inside this worker); the GEMM has its own.
    setWasmPaths({ 'tfjs-backend-wasm.wasm': plainWasm, 'tfjs-backend-wasm-simd.wasm': simdWasm, 'tfjs-backend-wasm-threaded-simd.wasm': threadedWasm });
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    const backend = new WasmBackend(threads === undefined ? {} : { threads }, browserGemmPlatform());
    const availability = await backend.available();
    if (!availability.ok) throw new TopiaryError('E_BACKEND', availability.reason ?? 'the wasm backend is not available', { hint: availability.fix });
    await backend.init();
    // start the GEMM's workers now: a browser starts them only while this thread is free
    await sharedGemmPool()?.ready();
    this.backend = backend;
    const container = createContainer();
    const host = new PluginHost(container);
    for (const plugin of INSTALLED_PLUGINS) host.use(plugin);
    host.freeze();
    container.register(Tokens.TensorBackend, { useValue: backend });
    this.container = container;
    const caps = backend.capabilities();
    return {
      backend: backend.name,
      threads: sharedGemmPool()?.threads ?? caps.threads,
      crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
      notes: [...caps.notes],
      pruners: resolveAllOrNone(container, Tokens.Pruner).map((p) => ({
        name: p.name,
        description: p.description,
        granularity: p.granularity,
        needsCalibration: typeof p.needsCalibration === 'boolean' ? p.needsCalibration : false,
        ...(p.calibrationDefaults ? { calibrationDefaults: { ...p.calibrationDefaults } } : {}),
        fields: optionFields(p.options).map((f) => ({ ...f, types: [...f.types], ...(f.choices ? { choices: [...f.choices] } : {}) })),
      })),
    };
  }

  /**
   * Put the picked files in a folder of their own and load the model (and its tokenizer) from it. The model open
   * before stays open until this one has loaded: a file that fails leaves the page as it was.
   */
  async open(files: readonly PickedFile[], label: string, memoryLimit = DEFAULT_MEMORY_LIMIT): Promise<ModelSummary> {
    const dir = `/models/${++this.opened}`;
    for (const f of files) putFile(`${dir}/${f.name}`, new Uint8Array(f.bytes));
    let loaded: Loaded;
    try {
      loaded = await this.load(dir, files.map((f) => f.name), label, memoryLimit);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    this.release();
    this.original = loaded;
    return this.summary(loaded.model, label);
  }

  private async load(dir: string, names: readonly string[], label: string, memoryLimit: number): Promise<Loaded> {
    const failFor = (file: string | undefined, message: string, hint?: string): TopiaryError => new TopiaryError('E_FORMAT', message, { ...(file ? { file } : {}), ...(hint ? { hint } : {}) });
    const HINT = 'pick an HF folder (config.json, model.safetensors, tokenizer.json) or a llama2.c .bin with its tokenizer (tok512.bin, tokenizer.bin or tokenizer.json)';
    let modelPath: string;
    let tokenizerPath: string | undefined;
    if (names.includes('config.json')) {
      if (!names.some((n) => n.endsWith('.safetensors'))) throw failFor('config.json', 'config.json was picked without its weights: no .safetensors file', HINT);
      modelPath = dir;
      tokenizerPath = names.find((n) => /^tokenizer\.(json|bin)$/.test(n) || /^tok.*\.bin$/.test(n));
      if (tokenizerPath) tokenizerPath = `${dir}/${tokenizerPath}`;
    } else {
      const tokenizers = names.filter((n) => TOKENIZER_NAME.test(n));
      const candidates = names.filter((n) => !tokenizers.includes(n));
      const safetensors = candidates.find((n) => n.endsWith('.safetensors'));
      if (safetensors) throw failFor(safetensors, `${safetensors} needs its config.json beside it`, 'pick the whole Hugging Face folder (config.json, model.safetensors, tokenizer.json)');
      const bins = candidates.filter((n) => n.toLowerCase().endsWith('.bin'));
      if (bins.length === 0) {
        const first = candidates[0] ?? names[0];
        throw failFor(first, `${first ?? 'nothing'} is not a model: ${first && /\.(pt|pth|ckpt)$/.test(first) ? 'a pickle checkpoint (convert it to safetensors)' : 'no config.json + .safetensors and no llama2.c .bin among the picked files'}`, HINT);
      }
      if (bins.length > 1) throw failFor(bins[1], `several model files picked (${bins.join(', ')}): pick one model`, HINT);
      modelPath = `${dir}/${bins[0]}`;
      if (tokenizers.length === 0) throw failFor(bins[0], `${bins[0]} is a llama2.c model file and needs its tokenizer`, 'pick its tokenizer too (tok512.bin, tokenizer.bin or tokenizer.json)');
      tokenizerPath = `${dir}/${tokenizers[0]}`;
    }
    // the size as float32, from the headers alone, before anything is read
    let config: LlamaConfig;
    try {
      const source = openWeights(modelPath);
      config = source.config;
      source.close();
    } catch (e) {
      throw withFileName(e, modelPath, modelPath === dir ? label : basename(modelPath));
    }
    const parameters = [...parameterShapes(config).values()].reduce((s, shape) => s + shape.reduce((a, d) => a * d, 1), 0);
    const bytes = parameters * 4;
    if (bytes > memoryLimit) {
      throw new TopiaryError('E_USAGE', `the model is too big for this page's memory: ${parameters.toLocaleString('en')} parameters need ${gib(bytes)} as float32, and the page holds at most ${gib(memoryLimit)} per model`, {
        file: basename(modelPath === dir ? `${dir}/${names.find((n) => n.endsWith('.safetensors'))}` : modelPath),
        hint: 'use the CLI (it streams real-size models block by block), or a smaller model',
      });
    }
    let loaded;
    try {
      loaded = await loadModelWithTokenizer({ model: modelPath, ...(tokenizerPath ? { tokenizer: tokenizerPath } : {}) }, { needTokenizer: true });
    } catch (e) {
      if (e instanceof RangeError || (e instanceof Error && /memory|allocation/i.test(e.message) && !(e instanceof TopiaryError))) {
        throw new TopiaryError('E_USAGE', `the page ran out of memory loading the model: ${e.message}`, { file: basename(modelPath), hint: 'use the CLI for models this size' });
      }
      throw withFileName(e, modelPath, modelPath === dir ? label : basename(modelPath));
    }
    return { label, dir, format: loaded.format, model: loaded.model, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, modelPath: loaded.modelPath };
  }

  /** Close the open model (and its pruned copy) and drop its files. */
  private release(): void {
    this.pruned?.dispose();
    this.pruned = undefined;
    if (this.original) {
      this.original.model.dispose();
      rmSync(this.original.dir, { recursive: true, force: true });
    }
    this.original = undefined;
  }

  private need(): Loaded {
    if (!this.original) throw new TopiaryError('E_USAGE', 'open a model first');
    return this.original;
  }

  private modelOf(which: 'original' | 'pruned'): LlamaModel {
    const loaded = this.need();
    if (which === 'original') return loaded.model;
    if (!this.pruned) throw new TopiaryError('E_USAGE', 'prune the model first');
    return this.pruned;
  }

  summary(model: LlamaModel, label: string): ModelSummary {
    const loaded = this.need();
    const config = model.config as LlamaConfig;
    const shapes = parameterShapes(config);
    const rows: LayerRow[] = [];
    for (let layer = 0; layer < config.nLayers; layer++) {
      const prefix = `model.layers.${layer}.`;
      const tensors = [...shapes].filter(([name]) => name.startsWith(prefix)).map(([name, shape]) => ({ name: name.slice(prefix.length).replace(/\.weight$/, ''), shape: [...shape], parameters: shape.reduce((a, d) => a * d, 1) }));
      const widths = architectureOf(model).layers[layer]!;
      rows.push({ layer, tensors, heads: widths.nHeads, kvHeads: widths.nKvHeads, ffn: widths.hiddenDim, parameters: tensors.reduce((s, t) => s + t.parameters, 0) });
    }
    let zeros = 0;
    for (const lin of model.linears()) for (const v of model.readWeight(lin.param)) if (v === 0) zeros++;
    const parameters = model.parameterCount();
    return {
      label,
      format: loaded.format,
      dtype: loadedDtype(config) ?? 'float32',
      tokenizer: `${basename(loaded.tokenizerPath)} (${loaded.tokenizer.name})`,
      vocabSize: config.vocabSize,
      dim: config.dim,
      layers: config.nLayers,
      context: config.maxSeqLen,
      parameters,
      nonZero: parameters - zeros,
      rows,
    };
  }

  generate(which: 'original' | 'pruned', prompt: string, maxTokens: number, temperature: number, seed: number): { text: string; tokens: number } {
    const { tokenizer } = this.need();
    const model = this.modelOf(which);
    const ids = tokenizer.encode(prompt, { bos: true });
    const out: number[] = [];
    let shown = '';
    generate(model, ids, {
      maxTokens,
      temperature,
      seed,
      onToken: (id) => {
        out.push(id);
        // decode the whole continuation: pieces that join (bytes of one character) come out right
        const text = tokenizer.decode(out);
        if (text.length > shown.length && text.startsWith(shown)) this.report.token(text.slice(shown.length));
        shown = text;
      },
    });
    return { text: tokenizer.decode(out), tokens: out.length };
  }

  private env(): StageEnv {
    const loaded = this.need();
    return { container: this.container!, events: this.events, backend: this.backend!, tokenizer: loaded.tokenizer, tokenizerPath: loaded.tokenizerPath, seed: 0 };
  }

  /** Prune the original with `method`, its options given as the CLI's flags are (text, coerced by its schema). */
  async prune(method: string, given: Record<string, string | boolean>, calibration: { name: string; text: string; samples?: number; seqLen?: number; seed: number }): Promise<PruneSummary> {
    const loaded = this.need();
    const env = { ...this.env(), seed: calibration.seed };
    const pruner = resolveAllOrNone(this.container!, Tokens.Pruner).find((p: Pruner) => p.name === method);
    if (!pruner) throw new TopiaryError('E_PLUGIN_UNKNOWN', `no pruner named ${method}`, { where: 'method' });
    const options: Raw = {};
    for (const field of optionFields(pruner.options)) {
      const value = given[field.key];
      if (value === undefined || value === '' || value === false) continue;
      options[field.key] = coerceFlagValue(field, value);
    }
    // the pruned model starts from a fresh copy of the original (a second prune replaces the first)
    this.pruned?.dispose();
    this.pruned = undefined;
    const model = (await loadModelWithTokenizer({ model: loaded.modelPath, tokenizer: loaded.tokenizerPath }, { needTokenizer: false })).model;
    const file = `/data/${safeName(calibration.name)}`;
    putFile(file, new TextEncoder().encode(calibration.text));
    // sizes as the CLI resolves them (given, else the method's published default, else 128 × context)
    const { samples, seqLen } = resolveCalibrationSize({ samples: calibration.samples, seqLen: calibration.seqLen }, model, pruner.calibrationDefaults);
    const spec = { path: file, samples, seqLen, seed: calibration.seed };
    try {
      // the stage draws the windows (calibrationWindows) only when the method or its saliency needs data
      const out = await runPruneStage(env, model, { method, options, where: '', methodWhere: 'method', calibration: spec, calibrationWhere: 'calibration' });
      if (out.model !== model) model.dispose();
      this.pruned = out.model as LlamaModel;
      const result = out.result;
      return {
        method: out.report.method,
        seconds: out.report.seconds,
        ...(out.report.sparsity !== undefined ? { sparsity: out.report.sparsity } : {}),
        parametersBefore: out.report.parametersBefore,
        parametersAfter: out.report.parametersAfter,
        layers: out.report.layers.map((l) => ({ param: l.param, layer: l.layer, sparsity: l.sparsity })),
        widthsBefore: [...(result.architectureBefore?.layers ?? [])],
        widthsAfter: [...(result.architectureAfter?.layers ?? [])],
        ...(out.calibration && out.calibration.length > 0 ? { calibration: { samples: out.calibration.length, seqLen: out.calibration[0]!.length } } : {}),
        model: this.summary(this.pruned, `${loaded.label} · ${out.report.method}`),
        // the run report's own charts (packages/report), as SVG
        charts: sparsityBars([result]) + widthBars([result]),
      };
    } catch (e) {
      if (this.pruned !== model) model.dispose();
      throw withFileName(e, file, calibration.name);
    }
  }

  async perplexity(which: 'original' | 'pruned', name: string, text: string, seqLen?: number, limit?: number): Promise<PerplexitySummary> {
    const { tokenizer } = this.need();
    const model = this.modelOf(which);
    const file = `/data/${safeName(name)}`;
    putFile(file, new TextEncoder().encode(text));
    try {
      const report = await evaluatePerplexity(model, tokenizer, { file, seqLen: seqLen ?? model.config.maxSeqLen, bos: false }, { events: this.events, ...(limit !== undefined ? { limit } : {}) });
      return { which, ppl: report.ppl, tokens: report.tokens, windows: report.windows, seqLen: report.seqLen };
    } catch (e) {
      throw withFileName(e, file, name);
    }
  }

  /** The pruned model (or the original when nothing was pruned) as files to download. */
  async export(format: 'safetensors' | 'gguf'): Promise<DownloadFile[]> {
    const loaded = this.need();
    const model = this.pruned ?? loaded.model;
    const dir = `/out/${format}-${Date.now()}`;
    if (format === 'safetensors') {
      await saveModelWithTokenizer(model, dir, loaded.tokenizerPath);
    } else {
      const config = model.config as LlamaConfig;
      const refusal = ggufRefusal(config);
      if (refusal) throw new TopiaryError('E_USAGE', refusal.message, { hint: refusal.hint });
      const weights = new Map<string, Float32Array>();
      for (const name of parameterShapes(config).keys()) weights.set(name, model.readWeight(name));
      const vocab = ggufVocab(loaded.tokenizerPath, loaded.tokenizer.bosId, loaded.tokenizer.eosId);
      writeGguf(`${dir}/model.gguf`, config, weights, { vocab, name: loaded.label });
    }
    const files = (readdirSync(dir) as string[]).map((name) => {
      const bytes = takeFile(`${dir}/${name}`);
      return { name, bytes: bytes.buffer as ArrayBuffer };
    });
    rmSync(dir, { recursive: true, force: true });
    return files;
  }
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function safeName(name: string): string {
  return basename(name).replace(/[^A-Za-z0-9._-]/g, '_') || 'text.txt';
}

/**
 * Errors name files of the worker's file system (`/models/3/junk.bin`): shown to people as the name they picked.
 * Anything that is not a TopiaryError becomes one naming the file it happened on.
 */
export function withFileName(e: unknown, path: string, shown = basename(path)): TopiaryError {
  const rename = (text: string | undefined): string | undefined =>
    text
      ?.replaceAll(path, shown)
      .replaceAll(/\/(models|data|out)\/[^\s'"]*\//g, '')
      .replaceAll(/\/models\/\d+\b/g, 'the picked folder');
  if (e instanceof TopiaryError) {
    const file = e.file ? (e.file === path ? shown : basename(e.file)) : undefined;
    return new TopiaryError(e.code, rename(e.message) ?? e.message, { ...(file ? { file } : {}), ...(e.where ? { where: rename(e.where) } : {}), ...(e.hint ? { hint: rename(e.hint) } : {}), cause: e });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new TopiaryError('E_FORMAT', rename(message) ?? message, { file: shown, cause: e });
}
