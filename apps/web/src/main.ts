/**
 * The page: forms and results only. Every model operation is a request to the compute worker (client.ts →
 * worker.ts → engine.ts), so the page never blocks; Cancel terminates the worker and starts a fresh one.
 */
import type { OptionField } from '@topiary/kernel';
import configUrl from '../../../assets/models/stories260K-hf/config.json?url';
import weightsUrl from '../../../assets/models/stories260K-hf/model.safetensors?url';
import tokenizerUrl from '../../../assets/models/stories260K-hf/tokenizer.json?url';
import tokenizerConfigUrl from '../../../assets/models/stories260K-hf/tokenizer_config.json?url';
import textUrl from '../../../assets/data/tinystories_val_head.txt?url';
import { Cancelled, WorkerClient, WorkerFailure } from './client.js';
import type { EngineInfo, ModelSummary, PickedFile, PrunerInfo, PruneSummary } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
};
const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
const numberOf = (id: string): number | undefined => {
  const v = input(id).value.trim();
  return v === '' ? undefined : Number(v);
};

const client = new WorkerClient((level, message) => console.log(`[${level}] ${message}`));
const page = new URLSearchParams(location.search);
/** `?memory=MB` lowers the per-model memory limit (to see the too-big message without a big model). */
const memoryLimitBytes = page.has('memory') ? Number(page.get('memory')) * 2 ** 20 : undefined;

let info: EngineInfo | undefined;
let original: ModelSummary | undefined;
let pruned: PruneSummary | undefined;
let calibration: { name: string; text: string } | undefined;
let evaluation: { name: string; text: string } | undefined;
let bundledText: Promise<string> | undefined;

// ----------------------------------------------------------------------------- messages

function showMessage(text: string, options: { file?: string; hint?: string; ok?: boolean } = {}): void {
  const box = $('message');
  box.replaceChildren();
  box.className = options.ok ? 'ok' : '';
  if (options.file) {
    const f = document.createElement('span');
    f.className = 'file';
    f.textContent = `${options.file}: `;
    box.append(f);
  }
  box.append(text);
  if (options.hint) {
    const h = document.createElement('span');
    h.className = 'hint';
    h.textContent = options.hint;
    box.append(h);
  }
  box.hidden = false;
  box.dataset.kind = options.ok ? 'ok' : 'error';
}

function clearMessage(): void {
  $('message').hidden = true;
}

function report(e: unknown): void {
  if (e instanceof Cancelled) return; // the Cancel button tells what happened
  if (e instanceof WorkerFailure) {
    const { message, file, where, hint } = e.failure;
    // a field at fault is named as the CLI names its flag, beside the file when there is one
    return showMessage(where && !file ? `${where}: ${message}` : message, { ...(file ? { file } : {}), ...(hint ? { hint } : {}) });
  }
  showMessage(e instanceof Error ? e.message : String(e));
}

/** Run one job with the buttons disabled and the progress bar live; failures go to the message box. */
async function job(label: string, work: () => Promise<void>): Promise<void> {
  const buttons = [...document.querySelectorAll<HTMLButtonElement>('button:not(#cancel)')];
  buttons.forEach((b) => (b.disabled = true));
  $<HTMLButtonElement>('cancel').disabled = false;
  document.body.dataset.busy = label;
  setProgress(label, 0, 1);
  try {
    await work();
  } catch (e) {
    report(e);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    $<HTMLButtonElement>('cancel').disabled = true;
    if (document.body.dataset.busy === label) {
      delete document.body.dataset.busy;
      setProgress('', 0, 1);
    }
  }
}

function setProgress(task: string, current: number, total: number, info?: string): void {
  const bar = $<HTMLProgressElement>('progress');
  bar.max = Math.max(1, total);
  bar.value = current;
  $('progress-text').textContent = task ? `${task} ${total > 1 ? `${current}/${total}` : ''} ${info ?? ''}`.trim() : '';
}

const progress = { progress: (task: string, current: number, total: number, info?: string) => setProgress(task, current, total, info) };

// ----------------------------------------------------------------------------- open

async function fetchBytes(url: string): Promise<ArrayBuffer> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not fetch ${url}: ${response.status}`);
  return response.arrayBuffer();
}

function bundledTinyStories(): Promise<string> {
  bundledText ??= fetch(textUrl).then((r) => r.text());
  return bundledText;
}

async function open(files: PickedFile[], label: string): Promise<void> {
  clearMessage();
  await job('opening', async () => {
    const answer = await client.request({ kind: 'open', files, label, ...(memoryLimitBytes !== undefined ? { memoryLimitBytes } : {}) }, progress);
    original = answer.summary;
    pruned = undefined;
    showModel(answer.summary);
    showMessage(`opened ${label}: ${answer.summary.parameters.toLocaleString('en')} parameters`, { ok: true });
  });
}

async function pickedFiles(list: FileList | null): Promise<PickedFile[]> {
  const files = [...(list ?? [])];
  return Promise.all(files.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
}

function folderLabel(list: FileList | null): string {
  const first = list?.[0] as (File & { webkitRelativePath?: string }) | undefined;
  const rel = first?.webkitRelativePath ?? '';
  return rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : (first?.name ?? 'model');
}

// ----------------------------------------------------------------------------- inspect

function cell(row: HTMLTableRowElement, text: string, tag: 'td' | 'th' = 'td'): void {
  const c = document.createElement(tag);
  c.textContent = text;
  row.append(c);
}

function showModel(m: ModelSummary): void {
  $('inspect-section').hidden = false;
  $('prune-section').hidden = false;
  $('compare-section').hidden = false;
  $('download-section').hidden = false;
  const summary = document.createElement('table');
  for (const [k, v] of [
    ['model', m.label],
    ['format', `${m.format} (${m.dtype})`],
    ['tokenizer', `${m.tokenizer}, ${m.vocabSize} tokens`],
    ['shape', `dim ${m.dim}, ${m.layers} blocks, context ${m.context}`],
    ['parameters', m.parameters.toLocaleString('en')],
  ] as const) {
    const r = summary.insertRow();
    cell(r, k, 'th');
    cell(r, v);
  }
  $('summary').replaceChildren(summary);
  const table = document.createElement('table');
  table.className = 'numbers';
  const head = table.createTHead().insertRow();
  for (const h of ['block', 'heads', 'kv heads', 'FFN', 'tensors [out, in]', 'parameters']) cell(head, h, 'th');
  for (const row of m.rows) {
    const r = table.insertRow();
    cell(r, String(row.layer));
    cell(r, String(row.heads));
    cell(r, String(row.kvHeads));
    cell(r, String(row.ffn));
    cell(r, row.tensors.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(' · '));
    cell(r, row.parameters.toLocaleString('en'));
  }
  $('layers').replaceChildren(table);
  $('params-original').textContent = m.parameters.toLocaleString('en');
  $('nz-original').textContent = m.nonZero.toLocaleString('en');
  for (const id of ['ppl-original', 'ppl-pruned', 'tokens-original', 'tokens-pruned', 'params-pruned', 'nz-pruned']) {
    $(id).textContent = '—';
    delete $(id).dataset.value;
  }
  $('charts').replaceChildren();
  $('prune-result').replaceChildren();
  $('story-original').textContent = '';
  $('story-pruned').textContent = '';
}

async function generateInto(which: 'original' | 'pruned', prompt: string, target: HTMLElement): Promise<void> {
  target.textContent = prompt;
  let chunks = 0;
  const answer = await client.request(
    { kind: 'generate', which, prompt, maxTokens: numberOf('max-tokens') ?? 80, temperature: numberOf('temperature') ?? 0, seed: 0 },
    {
      token: (text) => {
        target.textContent += text;
        target.dataset.chunks = String(++chunks);
      },
    },
  );
  target.textContent = prompt + answer.text;
  target.dataset.tokens = String(answer.tokens);
}

// ----------------------------------------------------------------------------- prune

function showMethods(pruners: readonly PrunerInfo[]): void {
  const select = $<HTMLSelectElement>('method');
  select.replaceChildren(...pruners.map((p) => new Option(p.name, p.name, false, p.name === 'wanda')));
  showOptions();
}

function fieldInput(field: OptionField): HTMLLabelElement {
  const label = document.createElement('label');
  const name = document.createElement('strong');
  name.textContent = field.key;
  const help = document.createElement('span');
  help.textContent = field.description;
  let control: HTMLInputElement | HTMLSelectElement;
  if (field.boolean) {
    control = document.createElement('input');
    control.type = 'checkbox';
    control.checked = field.default === true;
  } else if (field.choices && field.choices.every((c) => typeof c === 'string')) {
    control = document.createElement('select');
    control.append(new Option('(default)', ''), ...field.choices.map((c) => new Option(String(c), String(c), false, c === field.default)));
  } else {
    control = document.createElement('input');
    control.type = 'text';
    control.placeholder = field.default === undefined ? field.valueName : JSON.stringify(field.default);
    // the page's example is the quickstart: 50 % sparsity
    if (field.key === 'sparsity' && field.default === undefined) control.value = '0.5';
  }
  control.dataset.key = field.key;
  control.id = `option-${field.key}`;
  label.append(name, control, help);
  return label;
}

function showOptions(): void {
  const method = $<HTMLSelectElement>('method').value;
  const pruner = info?.pruners.find((p) => p.name === method);
  $('method-description').textContent = pruner ? `${pruner.description} (${pruner.granularity})` : '';
  $('options').replaceChildren(...(pruner?.fields ?? []).map(fieldInput));
  const defaults = pruner?.calibrationDefaults;
  input('samples').placeholder = String(defaults?.samples ?? 128);
}

function optionValues(): Record<string, string | boolean> {
  const values: Record<string, string | boolean> = {};
  for (const el of $('options').querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-key]')) {
    const key = el.dataset.key!;
    if (el instanceof HTMLInputElement && el.type === 'checkbox') {
      if (el.checked) values[key] = true;
    } else if (el.value.trim() !== '') values[key] = el.value.trim();
  }
  return values;
}

async function calibrationText(): Promise<{ name: string; text: string }> {
  // pasted text wins; loading a file empties the box
  const pasted = $<HTMLTextAreaElement>('calibration-text').value;
  if (pasted.trim() !== '') return { name: 'pasted.txt', text: pasted };
  return calibration ?? { name: 'tinystories_val_head.txt', text: await bundledTinyStories() };
}

async function prune(): Promise<void> {
  clearMessage();
  await job('pruning', async () => {
    const cal = await calibrationText();
    const samples = numberOf('samples');
    const seqLen = numberOf('seqlen');
    const answer = await client.request(
      {
        kind: 'prune',
        method: $<HTMLSelectElement>('method').value,
        options: optionValues(),
        calibration: { ...cal, ...(samples !== undefined ? { samples } : {}), ...(seqLen !== undefined ? { seqLen } : {}), seed: numberOf('seed') ?? 0 },
      },
      progress,
    );
    pruned = answer.summary;
    const s = answer.summary;
    const p = document.createElement('p');
    p.id = 'prune-summary';
    p.textContent =
      `${s.method}: ${s.seconds.toFixed(1)} s` +
      (s.sparsity !== undefined ? ` · sparsity ${(100 * s.sparsity).toFixed(1)} %` : '') +
      ` · parameters ${s.parametersBefore.toLocaleString('en')} → ${s.parametersAfter.toLocaleString('en')}` +
      (s.calibration ? ` · calibration ${s.calibration.samples} × ${s.calibration.seqLen} tokens from ${cal.name}` : '');
    $('prune-result').replaceChildren(p);
    $('charts').innerHTML = s.charts; // SVG strings from packages/report (escaped there)
    $('params-pruned').textContent = s.model.parameters.toLocaleString('en');
    $('nz-pruned').textContent = s.model.nonZero.toLocaleString('en');
    $('ppl-pruned').textContent = '—';
    delete $('ppl-pruned').dataset.value;
    showMessage(`pruned with ${s.method}`, { ok: true });
  });
}

// ----------------------------------------------------------------------------- compare

async function evaluate(): Promise<void> {
  clearMessage();
  await job('perplexity', async () => {
    const text = evaluation ?? { name: 'tinystories_val_head.txt', text: await bundledTinyStories() };
    const seqLen = numberOf('eval-seqlen');
    const limit = numberOf('eval-limit');
    for (const which of pruned ? (['original', 'pruned'] as const) : (['original'] as const)) {
      const { result } = await client.request({ kind: 'perplexity', which, name: text.name, text: text.text, ...(seqLen !== undefined ? { seqLen } : {}), ...(limit !== undefined ? { limit } : {}) }, progress);
      const cellEl = $(`ppl-${which}`);
      cellEl.textContent = result.ppl.toFixed(4);
      // full precision for comparisons (the browser test reads it)
      cellEl.dataset.value = String(result.ppl);
      $(`tokens-${which}`).textContent = result.tokens.toLocaleString('en');
    }
    showMessage(`perplexity on ${text.name}`, { ok: true });
  });
}

async function compareGenerate(): Promise<void> {
  clearMessage();
  await job('generating', async () => {
    const prompt = input('compare-prompt').value;
    await generateInto('original', prompt, $('story-original'));
    if (pruned) await generateInto('pruned', prompt, $('story-pruned'));
    else $('story-pruned').textContent = '(prune first)';
  });
}

// ----------------------------------------------------------------------------- download

/** A link to the file (kept in the page, for a browser that blocks several automatic downloads), clicked once. */
function save(name: string, bytes: ArrayBuffer): HTMLAnchorElement {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes]));
  a.download = name;
  a.textContent = `${name} (${(bytes.byteLength / 1024).toFixed(0)} KiB)`;
  a.click();
  return a;
}

async function download(format: 'safetensors' | 'gguf'): Promise<void> {
  clearMessage();
  await job('writing', async () => {
    const { files } = await client.request({ kind: 'export', format });
    const prefix = pruned ? `${pruned.method}-` : '';
    for (const old of $('download-text').querySelectorAll('a')) URL.revokeObjectURL(old.href);
    $('download-text').replaceChildren(...files.flatMap((f, i) => [...(i > 0 ? [' · '] : []), save(`${prefix}${f.name}`, f.bytes)]));
    $('download-text').dataset.files = files.map((f) => f.name).join(',');
  });
}

// ----------------------------------------------------------------------------- wiring

$('example').addEventListener('click', () => {
  void (async () => {
    const names = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
    const urls = [configUrl, weightsUrl, tokenizerUrl, tokenizerConfigUrl];
    const files = await Promise.all(names.map(async (name, i) => ({ name, bytes: await fetchBytes(urls[i]!) })));
    await open(files, 'stories260K');
  })().catch(report);
});
input('pick-folder').addEventListener('change', () => {
  const list = input('pick-folder').files;
  void pickedFiles(list).then((files) => open(files, folderLabel(list))).catch(report);
});
input('pick-files').addEventListener('change', () => {
  const list = input('pick-files').files;
  void pickedFiles(list).then((files) => open(files, files.map((f) => f.name).join(' + '))).catch(report);
});
input('calibration-file').addEventListener('change', () => {
  const file = input('calibration-file').files?.[0];
  if (!file) return;
  void file.text().then((text) => {
    calibration = { name: file.name, text };
    $('calibration-name').textContent = `${file.name} (${(text.length / 1024).toFixed(0)} KB)`;
    $<HTMLTextAreaElement>('calibration-text').value = '';
  });
});
input('eval-file').addEventListener('change', () => {
  const file = input('eval-file').files?.[0];
  if (!file) return;
  void file.text().then((text) => {
    evaluation = { name: file.name, text };
    $('eval-name').textContent = file.name;
  });
});
$('method').addEventListener('change', showOptions);
$('generate').addEventListener('click', () => void job('generating', () => generateInto('original', input('prompt').value, $('generated'))));
$('prune').addEventListener('click', () => void prune());
$('cancel').addEventListener('click', () => {
  $<HTMLButtonElement>('cancel').disabled = true;
  document.body.dataset.busy = 'cancelling';
  setProgress('cancelling', 0, 1);
  void client
    .cancel()
    .then(
      () => {
        pruned = undefined;
        if (original) showModel(original);
        showMessage('cancelled: the worker was stopped and the model reopened', { ok: true });
      },
      (e: unknown) => report(e),
    )
    .finally(() => {
      delete document.body.dataset.busy;
      setProgress('', 0, 1);
    });
});
$('evaluate').addEventListener('click', () => void evaluate());
$('compare-generate').addEventListener('click', () => void compareGenerate());
$('download-safetensors').addEventListener('click', () => void download('safetensors'));
$('download-gguf').addEventListener('click', () => void download('gguf'));
$('calibration-name').textContent = 'default: the bundled TinyStories text';
$('eval-name').textContent = 'default: the bundled TinyStories text';

void (async () => {
  try {
    const threads = page.has('threads') ? Number(page.get('threads')) : undefined;
    info = (await client.request({ kind: 'init', ...(threads !== undefined ? { threads } : {}) })).info;
    $('engine').textContent = `${info.backend} backend · GEMM on ${info.threads} thread${info.threads === 1 ? '' : 's'} · ${info.crossOriginIsolated ? 'cross-origin isolated' : 'not cross-origin isolated (one thread; see README)'} · ${info.pruners.length} pruners`;
    $('engine').dataset.threads = String(info.threads);
    showMethods(info.pruners);
    document.body.dataset.ready = 'true';
  } catch (e) {
    report(e);
    $('engine').textContent = 'the engine failed to start';
  }
})();
