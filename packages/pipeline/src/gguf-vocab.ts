/**
 * The vocabulary a GGUF file embeds, from the tokenizer file a model was loaded with. Here (not in model-llama,
 * which never reads tokenizers) so the CLI's `export` and the page's download write the same file.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { TopiaryError } from '@topiary/kernel';
import { parseLlama2cTokenizer } from '@topiary/corpus';
import { TokenType, ggufVocabFromPieces, type GgufVocab } from '@topiary/model-llama';

/**
 * The SentencePiece vocabulary for GGUF: from a llama2.c tokenizer .bin (scores as stored), or from a Hugging Face
 * tokenizer.json of a SentencePiece BPE model (byte fallback; ids in merge order, so scores are −rank as in the
 * .model file). Anything else is refused, naming --tokenizer.
 */
export function ggufVocab(tokenizerPath: string, bosId: number, eosId: number): GgufVocab {
  const bytes = readFileSync(tokenizerPath);
  if (!tokenizerPath.endsWith('.json')) {
    const v = parseLlama2cTokenizer(bytes, tokenizerPath);
    return ggufVocabFromPieces(v.pieces, v.scores, bosId, eosId);
  }
  const refuse = (why: string): never => {
    throw new TopiaryError('E_USAGE', `cannot embed ${basename(tokenizerPath)} in a GGUF: ${why}`, {
      where: '--tokenizer',
      hint: 'GGUF export writes a SentencePiece ("llama") vocabulary: pass --tokenizer a llama2.c tokenizer .bin, or a tokenizer.json of a SentencePiece BPE model',
    });
  };
  let json: { model?: { type?: string; vocab?: Record<string, number>; byte_fallback?: boolean }; added_tokens?: Array<{ id: number; content: string; special?: boolean }> };
  try {
    json = JSON.parse(bytes.toString('utf8')) as typeof json;
  } catch {
    return refuse('it is not valid JSON');
  }
  const model = json.model;
  if (!model || model.type !== 'BPE' || !model.vocab) return refuse(`its model is ${model?.type ?? 'missing'}, not a BPE vocabulary`);
  if (!model.byte_fallback) return refuse('it has no byte fallback (a byte-level BPE like GPT-2/Llama 3 is not a SentencePiece vocabulary)');
  const n = Math.max(...Object.values(model.vocab)) + 1;
  const tokens = new Array<string>(n).fill('');
  for (const [piece, id] of Object.entries(model.vocab)) tokens[id] = piece;
  const special = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
  const types = tokens.map((t, i) => (i === 0 ? TokenType.UNKNOWN : special.has(i) || i === bosId || i === eosId ? TokenType.CONTROL : /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TokenType.BYTE : TokenType.NORMAL));
  const firstNormal = types.findIndex((t) => t === TokenType.NORMAL);
  const scores = types.map((t, i) => (t === TokenType.NORMAL ? -(i - firstNormal) : 0));
  return { tokens, scores, types, bosId, eosId, unkId: 0 };
}
