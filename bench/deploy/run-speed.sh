#!/usr/bin/env bash
# llama.cpp speed (node-llama-cpp, CPU) of f16 GGUF exports: stories260K dense, llm-pruner 20 % and 50 % (width,
# arch deci, per-layer sizes), depth-pruned (1 of 5 blocks), the 20 % one padded (--pad); then a seeded random model
# with SmolLM-135M's block shape (576 wide, 30 blocks, 9/3 heads, FFN 1536; stories260K's 512-token vocabulary, so
# 106.5M parameters) and its llm-pruner 20 %, 50 % and depth (8 of 30 blocks) prunes.
# Needs: pnpm build of the CLI and model-llama; NODE_LLAMA_CPP=<dir>/node_modules/node-llama-cpp (see README.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$(mktemp -d)}"
cli="node $root/apps/cli/dist/bin.js --backend cpu"
hf="$root/assets/models/stories260K-hf"
cal="$root/assets/data/tinystories_val_head.txt"
speed() { node "$root/bench/deploy/speed.mjs" --prompt 128 --gen 64 --reps 5 --threads 1 "$@" 2>/dev/null; }
gguf() { $cli export --model "$1" --format gguf --dtype f16 "${@:3}" --out "$2" >/dev/null 2>&1; }

# stories260K
$cli --out "$out/llmp20" prune --model "$hf" --method llm-pruner --ratio 0.2 --calibration "$cal" --samples 10 --seqlen 64 >/dev/null 2>&1
# 0.5 within the default blocks 1..3 would empty a block: prune all five
$cli --out "$out/llmp50" prune --model "$hf" --method llm-pruner --ratio 0.5 --layers 0:5 --calibration "$cal" --samples 10 --seqlen 64 >/dev/null 2>&1
$cli --out "$out/depth" prune --model "$hf" --method depth --remove 1 --calibration "$cal" --samples 10 --seqlen 64 >/dev/null 2>&1
gguf "$hf" "$out/dense.gguf"
for m in llmp20 llmp50 depth; do gguf "$out/$m" "$out/$m.gguf"; done
gguf "$out/llmp20" "$out/llmp20-pad.gguf" --pad
echo "stories260K (f16 GGUF)"
speed dense="$out/dense.gguf" "llm-pruner 20%=$out/llmp20.gguf" "llm-pruner 50%=$out/llmp50.gguf" \
  "depth 1/5=$out/depth.gguf" "llm-pruner 20% --pad=$out/llmp20-pad.gguf"

# seeded random model, SmolLM-135M's block shape
mkdir -p "$out/smol"
python3 - "$hf/config.json" "$out/smol/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048)
json.dump(c, open(sys.argv[2], 'w'), indent=2)
PY
cp "$hf"/tokenizer*.json "$out/smol/"
node --input-type=module -e "
import { createLlama, readHfConfig, writeHf } from '$root/packages/model-llama/dist/index.js';
const cfg = readHfConfig('$out/smol'); const m = createLlama(cfg, { seed: 7 });
writeHf('$out/smol', cfg, new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n)])), { dtype: 'float32' });" >/dev/null 2>&1
$cli --out "$out/smol20" prune --model "$out/smol" --method llm-pruner --ratio 0.2 --calibration "$cal" --samples 4 --seqlen 32 >/dev/null 2>&1
$cli --out "$out/smol50" prune --model "$out/smol" --method llm-pruner --ratio 0.5 --calibration "$cal" --samples 4 --seqlen 32 >/dev/null 2>&1
$cli --out "$out/smoldepth" prune --model "$out/smol" --method depth --remove 8 --calibration "$cal" --samples 4 --seqlen 32 >/dev/null 2>&1
for m in smol smol20 smol50 smoldepth; do gguf "$out/$m" "$out/$m.gguf"; done
echo "SmolLM-135M block shape, seeded random (f16 GGUF)"
speed dense="$out/smol.gguf" "llm-pruner 20%=$out/smol20.gguf" "llm-pruner 50%=$out/smol50.gguf" "depth 8/30=$out/smoldepth.gguf"
