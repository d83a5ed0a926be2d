/**
 * The data of the EfficientLLM experiment on a pretrained source, derived deterministically from
 * `../shared/data/text/tinystories_val_head.txt` (the head of the TinyStories VALIDATION split; stories260K was
 * pretrained on the TRAIN split, so none of this text was seen by the source):
 *
 *   train.txt        the stories every arm trains on (and LLM-Pruner calibrates on)
 *   heldout.txt      the last `heldoutFraction` of the stories: never trained on, never used for calibration
 *   nextword.jsonl   a LAMBADA-style next-word task built from the held-out stories, {"text": ...} per line as in
 *                    lambada_openai_test.jsonl, so `topiary eval --tasks <path>/nextword.jsonl` scores it exactly
 *                    as lambada_openai (greedy-match accuracy of the last word + its perplexity)
 *   split.json       counts, the rules below and the sha256 of the source and of each output
 *
 * Stories. The file separates paragraphs and stories alike by a blank line, so a story boundary is not marked.
 * A block that opens with "Once upon a time" / "Once there was|were|lived|is" certainly starts a story; other
 * stories ("One day, ...", "Lily and Ben ...") cannot be told from a story's next paragraph. A *segment* is
 * therefore a run of blocks from one certain story start to the next: it ends exactly where a story ends, and it
 * may hold one story that opens differently after the first. The split cuts only between segments, so no story is
 * ever split between train and held-out. The blocks before the first certain start (the file begins mid-story)
 * go to train.
 *
 * Format: paragraphs inside a segment are joined by one newline, segments by a blank line (see `writeSplit`).
 *
 * Next-word items: one per held-out segment except the file's last (the head may cut its final story short).
 * lm-eval's lambada rule is applied: text.split(' '), the last word is the target. The last word has its trailing
 * punctuation and closing quotes stripped (LAMBADA's passages end on a bare word); segments whose last word is then
 * not purely alphabetic (e.g. "Max's", "3", a word after a line break) are skipped.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const STORY_START = /^Once (upon a time|there (was|were|lived|is))\b/;
const TRAILING = /[.,!?;:"'\u201d\u2019)\]]+$/;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/** The segments (arrays of blocks) of the text, in file order; the first may be a partial story. */
export function segments(text) {
  const blocks = text
    .replace(/\r\n/g, '\n')
    .split(/\n\s*\n/)
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  const out = [];
  for (const b of blocks) {
    if (out.length === 0 || STORY_START.test(b)) out.push([b]);
    else out[out.length - 1].push(b);
  }
  return out;
}

/** A lambada_openai record for one story, or null when its last word is not alphabetic after stripping. */
export function nextWordItem(story) {
  const words = story.split(' ');
  if (words.length < 2) return null;
  const last = words[words.length - 1].replace(TRAILING, '');
  if (!/^[A-Za-z]+$/.test(last)) return null;
  return { text: `${words.slice(0, -1).join(' ')} ${last}` };
}

/** Write train.txt, heldout.txt, nextword.jsonl and split.json into `dir`; returns the split summary. */
export function writeSplit(source, dir, heldoutFraction) {
  const text = readFileSync(source, 'utf8');
  const segs = segments(text);
  const nHeld = Math.max(2, Math.round(segs.length * heldoutFraction));
  const train = segs.slice(0, segs.length - nHeld);
  const held = segs.slice(segs.length - nHeld);
  // a segment's paragraphs are joined by one newline, segments by a blank line: the trainer then reads each segment
  // as one document with BOS and its paragraph breaks as "\n" tokens — the format stories260K was pretrained on
  // (llama2.c tinystories.py encodes each story whole with BOS; its greedy text breaks paragraphs with one "\n").
  // Blank lines between paragraphs would make every paragraph a BOS-prefixed document the source never saw.
  const story = (s) => s.join('\n');
  const join2 = (ss) => `${ss.map(story).join('\n\n')}\n`;
  const items = held.slice(0, -1).map((s) => nextWordItem(story(s)));
  const kept = items.filter((x) => x !== null);
  const files = {
    'train.txt': join2(train),
    'heldout.txt': join2(held),
    'nextword.jsonl': kept.map((x) => JSON.stringify(x)).join('\n') + '\n',
  };
  mkdirSync(dir, { recursive: true });
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  const summary = {
    source,
    sourceSha256: sha256(text),
    storyStart: STORY_START.source,
    heldoutFraction,
    segments: segs.length,
    trainSegments: train.length,
    heldoutSegments: held.length,
    trainBlocks: train.reduce((n, s) => n + s.length, 0),
    heldoutBlocks: held.reduce((n, s) => n + s.length, 0),
    trainBytes: Buffer.byteLength(files['train.txt']),
    heldoutBytes: Buffer.byteLength(files['heldout.txt']),
    nextWordItems: kept.length,
    nextWordSkipped: items.length - kept.length,
    nextWordTheEnd: kept.filter((x) => / end$/.test(x.text)).length,
    sha256: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])),
  };
  writeFileSync(join(dir, 'split.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
