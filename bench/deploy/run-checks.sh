#!/usr/bin/env bash
# GGUF exports of stories260K checked in llama.cpp (node-llama-cpp) against Topiary's greedy generation.
# Needs: pnpm build of the CLI; NODE_LLAMA_CPP=<dir>/node_modules/node-llama-cpp (see README.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$(mktemp -d)}"
cli="node $root/apps/cli/dist/bin.js --backend cpu"
bin="$root/assets/models/stories260K/stories260K.bin"
hf="$root/assets/models/stories260K-hf"
check() { node "$root/bench/deploy/llama-cpp-check.mjs" --gguf "$1" --model "$2" --tokens 20; }
for dtype in f32 f16 bf16 q8_0; do
  $cli export --model "$bin" --format gguf --dtype "$dtype" --out "$out/dense-$dtype.gguf" >/dev/null
  echo "dense $dtype: $(check "$out/dense-$dtype.gguf" "$bin" || true)"
done
$cli export --model "$hf" --format gguf --dtype f16 --out "$out/hf-f16.gguf" >/dev/null
echo "HF folder (tokenizer.json vocabulary) f16: $(check "$out/hf-f16.gguf" "$hf" || true)"
$cli --out "$out/llmp20" prune --model "$hf" --method llm-pruner --ratio 0.2 \
  --calibration "$root/assets/data/tinystories_val_head.txt" --samples 10 --seqlen 64 >/dev/null 2>&1
$cli export --model "$out/llmp20" --format gguf --pad --out "$out/llmp20-pad.gguf" >/dev/null
echo "llm-pruner 20% (non-uniform, --pad) f32: $(check "$out/llmp20-pad.gguf" "$out/llmp20" || true)"
$cli export --model "$out/llmp20" --format gguf --out "$out/llmp20.gguf" >/dev/null
echo "llm-pruner 20% (non-uniform, native deci) f32: $(check "$out/llmp20.gguf" "$out/llmp20" || true)"
$cli --out "$out/depth" prune --model "$hf" --method depth --remove 1 \
  --calibration "$root/assets/data/tinystories_val_head.txt" --samples 10 --seqlen 64 >/dev/null 2>&1
$cli export --model "$out/depth" --format gguf --out "$out/depth.gguf" >/dev/null
echo "depth 1 of 5 blocks f32: $(check "$out/depth.gguf" "$out/depth" || true)"
$cli --out "$out/sgpt24" prune --model "$hf" --method sparsegpt --pattern 2:4 \
  --calibration "$root/assets/data/tinystories_val_head.txt" --samples 16 --seqlen 64 >/dev/null 2>&1
$cli export --model "$out/sgpt24" --format gguf --out "$out/sgpt24.gguf" >/dev/null
echo "SparseGPT 2:4 (zeros kept, dense layout) f32: $(check "$out/sgpt24.gguf" "$out/sgpt24" || true)"
