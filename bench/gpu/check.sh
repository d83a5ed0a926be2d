#!/usr/bin/env bash
# Topiary GPU check, for a machine with an NVIDIA GPU and no network. Run from a copy of the repository that was
# installed and built elsewhere (node_modules and dist/ included), with a Node.js binary brought along if the
# machine has none — see bench/gpu/README.md. It verifies the driver, runs the backend conformance suite and the
# matmul / Gram / training benchmarks on gpujs (gpu.js in WebGL mode through headless-gl: never its CPU fallback)
# and on node-gpu where libtensorflow is present, wasm as the reference, and prints one table.
#
#   bench/gpu/check.sh [--node PATH] [--skip-driver-check] [--quick] [--json FILE]
#
#   --node PATH           the node binary (default: $TOPIARY_NODE, bench/gpu/node/bin/node, node/bin/node, PATH)
#   --skip-driver-check   run without an NVIDIA driver (to test this script elsewhere: WebGL then runs on Mesa)
#   --quick               4 s budget per benchmark measurement instead of 30 s (slow engines skip the large ones)
#   --json FILE           also write every number and reason as JSON
#
# Exit status: 0 all ran and passed; 1 a conformance test failed; 2 no usable driver / node / build (says which).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
node_bin="${TOPIARY_NODE:-}"
skip_driver=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node) node_bin="${2:?--node needs a path}"; shift 2 ;;
    --skip-driver-check) skip_driver=1; shift ;;
    --quick) pass+=(--quick); shift ;;
    --json) pass+=(--json "${2:?--json needs a file}"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "check: $*" >&2; }
fail() { echo "check: $*" >&2; exit 2; }

# 1. The NVIDIA driver
driver="not checked (--skip-driver-check)"
if [ "$skip_driver" = 0 ]; then
  command -v nvidia-smi >/dev/null 2>&1 \
    || fail "no nvidia-smi on PATH: the NVIDIA driver is not installed here (or not on PATH). On a machine without an NVIDIA GPU, --skip-driver-check runs the rest."
  gpus="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)" \
    || fail "nvidia-smi fails: $gpus"
  [ -n "$gpus" ] || fail "nvidia-smi lists no GPU"
  driver="$(echo "$gpus" | head -1)$( [ "$(echo "$gpus" | wc -l)" -gt 1 ] && echo " (+$(( $(echo "$gpus" | wc -l) - 1 )) more)")"
  say "driver: $driver"
  ls /dev/nvidia0 >/dev/null 2>&1 || say "note: /dev/nvidia0 is absent (a container without the device?)"
  cuda="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)"
  [ -n "$cuda" ] && say "driver's CUDA version: $cuda"
fi

# 2. Node.js: the one asked for, or one brought along, or the machine's
if [ -z "$node_bin" ]; then
  for c in "$here/node/bin/node" "$root/node/bin/node"; do [ -x "$c" ] && { node_bin="$c"; break; }; done
fi
[ -n "$node_bin" ] || node_bin="$(command -v node || true)"
[ -n "$node_bin" ] && [ -x "$node_bin" ] \
  || fail "no Node.js: bring one along (bench/gpu/README.md: unpack an official linux-x64 build as bench/gpu/node, or pass --node PATH)"
node_version="$("$node_bin" -p 'process.versions.node' 2>&1)" || fail "$node_bin does not run here: $node_version"
[ "${node_version%%.*}" -ge 20 ] 2>/dev/null || fail "Node.js $node_version at $node_bin: Topiary needs 20 or newer"
say "node: $node_bin ($node_version)"
export PATH="$(dirname "$node_bin"):$PATH"

# 3. The copied build
for f in node_modules/vitest/vitest.mjs plugins/backend-gpujs/dist/index.js plugins/backend-node-gpu/dist/index.js plugins/backend-wasm/dist/index.js apps/cli/dist/bin.js; do
  [ -e "$root/$f" ] || fail "$f is missing: install and build on a connected machine first (pnpm install --frozen-lockfile && pnpm build), then copy the whole folder (bench/gpu/README.md)"
done
addon="$(ls "$root"/node_modules/.pnpm/gl@*/node_modules/gl/build/Release/webgl.node 2>/dev/null | head -1)"
missing_libs() { # what the addon links and ANGLE loads (libGL.so.1) that this machine cannot find
  ldd "$addon" 2>/dev/null | awk '/not found/ {printf "%s ", $1}'
  ldconfig -p 2>/dev/null | grep -q 'libGL\.so\.1 ' || { [ -e "${LD_LIBRARY_PATH%%:*}/libGL.so.1" ] || printf 'libGL.so.1 '; }
}
if [ -z "$addon" ]; then
  say "headless-gl is not built in this copy: gpujs cannot use WebGL (build it where the copy was made: .ci/run lists the Debian packages)"
elif command -v ldd >/dev/null 2>&1; then
  missing="$(missing_libs)"
  if [ -n "$missing" ] && [ -d "$here/lib" ]; then
    say "this machine lacks $missing— using the copies pack.sh brought (bench/gpu/lib)"
    export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    missing="$(missing_libs)"
  fi
  [ -z "$missing" ] || say "headless-gl lacks these libraries here: $missing(Debian: libgl1 libx11-6 libxext6; or pack with bench/gpu/pack.sh) — gpujs cannot use WebGL until then"
fi

# 4. An X display for WebGL: headless-gl opens its GL context through one
if [ -n "${DISPLAY:-}" ]; then
  say "DISPLAY=$DISPLAY: WebGL through this X server (for the GPU it must be an X server on the NVIDIA driver)"
elif command -v Xvfb >/dev/null 2>&1; then
  say "no DISPLAY: the check starts Xvfb, whose OpenGL is Mesa's software rasteriser — WebGL runs, but on the CPU (bench/gpu/README.md: an X server on the GPU)"
else
  say "no DISPLAY and no Xvfb: gpujs's WebGL rows will say why they are skipped"
fi

cd "$root" && exec "$node_bin" bench/gpu/check.mjs --driver "$driver" ${pass[@]+"${pass[@]}"}
