#!/usr/bin/python3
"""Per-item reference for the lm-eval-harness tasks of @topiary/eval, written from lm-evaluation-harness's code
(EleutherAI/lm-evaluation-harness, tag v0.4.8), not from ours. Run with Debian's /usr/bin/python3 (PyTorch).

The model forward (float64) and the llama2.c encoder are the independent ones of eval_reference.py. What this file
adds, each rule with the lm-eval source it follows:

- requests: lm_eval/api/model.py `TemplateLM._encode_pair` (trailing context spaces move to the continuation;
  whole = enc(ctx + cont), cont = whole[len(enc(ctx)):]) and `loglikelihood` (empty context → [prefix token]);
  lm_eval/models/huggingface.py `_loglikelihood_tokens`: inp = (ctx + cont)[-(max_length + 1):][:-1], the
  log-softmax summed over the continuation, is_greedy = (argmax == cont).all();
- multiple choice: lm_eval/api/task.py `ConfigurableTask.construct_requests` (target_delimiter " " before each
  choice; multiple-input winogrande puts the choice in the context) and `process_results` (acc = argmax lls,
  acc_norm = argmax lls / len(choice) in characters of doc_to_choice);
- task prompts: lm_eval/tasks/piqa/piqa.yaml, winogrande/preprocess_winogrande.py, hellaswag/utils.py,
  arc/arc_easy.yaml, lambada/lambada_openai.yaml (context = text.split(' ')[:-1] joined by ' ', target = ' ' + last
  word; a loglikelihood request adds no delimiter; metrics acc = is_greedy and perplexity = exp(-mean(ll)));
- few-shot: lm_eval/api/samplers.py `ContextSampler.get_context` (n + 1 drawn and the evaluated doc removed when the
  few-shot split is the evaluated one, else n; examples doc_to_text + target_delimiter + target + "\\n\\n") with
  random.Random(1234) (lm_eval/evaluator.py fewshot_random_seed, task.py `set_fewshot_seed`), one generator for
  the whole task, documents in order; the pool is the evaluated file (our data has no train splits);
- bootstrap stderr of perplexity: lm_eval/api/metrics.py `bootstrap_stderr` / `_bootstrap_internal`.

Outputs bench/reference/outputs/lmeval_reference.json (committed). Run:
  /usr/bin/python3 bench/reference/lmeval_reference.py      (a few minutes)
"""
import hashlib
import json
import math
import os
import random
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from eval_reference import HF_DIR, ROOT, TOK, Llama, Llama2cTokenizer, encode_pair  # noqa: E402

SHARED = os.environ.get('TOPIARY_SHARED_DATA', os.path.join(ROOT, '..', 'shared', 'data'))
FIX = os.path.join(ROOT, 'packages', 'eval', 'test', 'fixtures')
DATA = os.path.join(ROOT, 'packages', 'eval', 'data')
OUT = os.path.join(ROOT, 'bench', 'reference', 'outputs', 'lmeval_reference.json')


def sha(s):
    return hashlib.sha256(s.encode('utf-8')).hexdigest()


def read_jsonl(path):
    return [json.loads(l) for l in open(path, encoding='utf-8') if l.strip()]


# ---- lm-eval task definitions (doc_to_text, doc_to_choice, doc_to_target) --------------------------------------
def hellaswag_pre(text):  # lm_eval/tasks/hellaswag/utils.py preprocess
    text = text.strip()
    text = text.replace(' [title]', '. ')
    text = re.sub('\\[.*?\\]', '', text)
    text = text.replace('  ', ' ')
    return text


def piqa(doc):
    return {'text': 'Question: ' + doc['goal'] + '\nAnswer:', 'choices': [doc['sol1'], doc['sol2']], 'gold': doc['label']}


def hellaswag(doc):  # utils.process_docs
    ctx = doc['ctx_a'] + ' ' + doc['ctx_b'].capitalize()
    return {'text': hellaswag_pre(doc['activity_label'] + ': ' + ctx), 'choices': [hellaswag_pre(e) for e in doc['endings']], 'gold': int(doc['label'])}


def arc_ai2(doc):
    q = doc['question']
    labels = [c['label'] for c in q['choices']]
    return {'text': 'Question: ' + q['stem'] + '\nAnswer:', 'choices': [c['text'] for c in q['choices']], 'gold': labels.index(doc['answerKey'])}


def winogrande(doc):  # preprocess_winogrande.py: multiple input
    idx = doc['sentence'].index('_')
    choices = [doc['sentence'][:idx] + o for o in [doc['option1'], doc['option2']]]
    target = doc['sentence'][idx + 1:].strip()
    return {'multiple_input': True, 'choices': choices, 'target': target, 'gold': {'1': 0, '2': 1}[doc['answer']]}


def lambada(doc):
    words = doc['text'].split(' ')
    return {'loglikelihood': True, 'text': ' '.join(words[:-1]), 'target': ' ' + words[-1]}


def fewshot_example(t):
    """samplers.py get_context: doc_to_text (or the gold choice for multiple input) + target_delimiter + target."""
    if t.get('multiple_input'):
        return t['choices'][t['gold']] + ' ' + t['target']
    if t.get('loglikelihood'):
        return t['text'] + ' ' + t['target']
    return t['text'] + ' ' + t['choices'][t['gold']]


def requests(t, prefix):
    if t.get('loglikelihood'):
        return [(prefix + t['text'], t['target'])]
    if t.get('multiple_input'):
        return [(prefix + c, ' ' + t['target']) for c in t['choices']]
    return [(prefix + t['text'], ' ' + c) for c in t['choices']]


# ---- scoring ---------------------------------------------------------------------------------------------------
def loglikelihood(model, tok, context, continuation):
    ctx, cont = encode_pair(tok, context, continuation)
    inp = (ctx + cont)[-(model.max_len + 1):]
    with torch.no_grad():
        logits = model.forward(torch.tensor([inp[:-1]]))[0]
    lp = torch.log_softmax(logits, -1)
    n = len(cont)
    tgt = torch.tensor(inp[-n:])
    pos = torch.arange(len(inp) - 1 - n, len(inp) - 1)
    ll = float(lp[pos, tgt].sum())
    greedy = bool((logits[pos].argmax(-1) == tgt).all())
    return ll, greedy


def mean_stderr(xs):
    n = len(xs)
    m = sum(xs) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)


def bootstrap_stderr(f, xs, iters):  # metrics.py bootstrap_stderr / _bootstrap_internal, serially in chunk order
    chunk = min(1000, iters)
    res = []
    for i in range(iters // chunk):
        rnd = random.Random()
        rnd.seed(i)
        for _ in range(chunk):
            res.append(f(rnd.choices(xs, k=len(xs))))
    mu = sum(res) / len(res)
    return math.sqrt(sum((x - mu) ** 2 for x in res) / (len(res) - 1))


def run(model, tok, docs, to_task, limit=None, num_fewshot=0, excludes_eval=True, seed=1234, bootstrap_iters=0):
    pool = docs
    evald = docs if limit is None else docs[:limit]
    rnd = random.Random(seed)
    items = []
    for doc_id, doc in enumerate(evald):
        prefix = ''
        if num_fewshot > 0:
            if excludes_eval:
                ex = [x for x in rnd.sample(pool, num_fewshot + 1) if x != doc][:num_fewshot]
            else:
                ex = rnd.sample(pool, num_fewshot)
            prefix = ''.join(fewshot_example(to_task(x)) + '\n\n' for x in ex)
        t = to_task(doc)
        reqs = requests(t, prefix)
        scored = [loglikelihood(model, tok, c, k) for c, k in reqs]
        lls = [s[0] for s in scored]
        item = {'doc_id': doc_id, 'logliks': lls, 'greedy': [s[1] for s in scored], 'context_sha256': sha(reqs[0][0])}
        if not t.get('loglikelihood'):
            norm_len = [len(c) for c in t['choices']]
            item['gold'] = t['gold']
            item['pred'] = max(range(len(lls)), key=lambda i: (lls[i], -i))
            item['pred_norm'] = max(range(len(lls)), key=lambda i: (lls[i] / norm_len[i], -i))
        items.append(item)
        print(f'  doc {doc_id}: {len(reqs[0][0])} context chars', file=sys.stderr) if doc_id % 10 == 0 else None
    out = {'n': len(items), 'num_fewshot': num_fewshot, 'seed': seed, 'items': items}
    if items and 'gold' in items[0]:
        out['acc'], out['acc_stderr'] = mean_stderr([1.0 if i['pred'] == i['gold'] else 0.0 for i in items])
        out['acc_norm'], out['acc_norm_stderr'] = mean_stderr([1.0 if i['pred_norm'] == i['gold'] else 0.0 for i in items])
    else:
        lls = [i['logliks'][0] for i in items]
        out['acc'], out['acc_stderr'] = mean_stderr([1.0 if i['greedy'][0] else 0.0 for i in items])
        out['perplexity'] = math.exp(-(sum(lls) / len(lls)))
        if bootstrap_iters:
            out['bootstrap_iters'] = bootstrap_iters
            out['perplexity_stderr'] = bootstrap_stderr(lambda xs: math.exp(-(sum(xs) / len(xs))), lls, bootstrap_iters)
    return out


def main():
    tok = Llama2cTokenizer(TOK)
    model = Llama(HF_DIR)
    runs = {}
    runs['piqa_hf'] = run(model, tok, read_jsonl(os.path.join(FIX, 'piqa_hf.jsonl')), piqa)
    runs['winogrande_hf'] = run(model, tok, read_jsonl(os.path.join(FIX, 'winogrande_hf.jsonl')), winogrande)
    runs['hellaswag_hf'] = run(model, tok, read_jsonl(os.path.join(FIX, 'hellaswag_hf.jsonl')), hellaswag)
    runs['piqa_hf_2shot'] = run(model, tok, read_jsonl(os.path.join(FIX, 'piqa_hf.jsonl')), piqa, num_fewshot=2)
    runs['winogrande_hf_1shot'] = run(model, tok, read_jsonl(os.path.join(FIX, 'winogrande_hf.jsonl')), winogrande, num_fewshot=1)
    runs['arc-easy-dev-mini_2shot'] = run(model, tok, read_jsonl(os.path.join(DATA, 'arc_easy_dev.head200.jsonl')), arc_ai2, limit=30, num_fewshot=2)
    lam = os.path.join(SHARED, 'eval', 'lambada_openai_test.jsonl')
    if os.path.exists(lam):
        docs = read_jsonl(lam)
        runs['lambada_openai'] = run(model, tok, docs, lambada, limit=40, bootstrap_iters=2000)
        runs['lambada_openai']['original'] = len(docs)
        runs['lambada_openai_1shot'] = run(model, tok, docs, lambada, limit=12, num_fewshot=1, excludes_eval=False)
    else:
        print('lambada skipped: ' + lam + ' is absent', file=sys.stderr)
    for k, r in runs.items():
        print(f"{k}: n={r['n']} acc={r['acc']:.4f}" + (f" ppl={r['perplexity']:.4f}" if 'perplexity' in r else ''), file=sys.stderr)
    result = {
        'produced_by': 'bench/reference/lmeval_reference.py (lm-evaluation-harness v0.4.8 rules; PyTorch float64 forward)',
        'torch': torch.__version__,
        'model': 'assets/models/stories260K-hf',
        'tokenizer': 'assets/models/stories260K/tok512.bin (llama2.c encoder reimplemented in Python), BOS in front',
        'runs': runs,
    }
    with open(OUT, 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    print('wrote', OUT, file=sys.stderr)


if __name__ == '__main__':
    main()
