#!/usr/bin/env bash
# Installs the PyTorch CPU baseline (Debian's python3-torch with OpenBLAS) and runs loraforge and PyTorch
# side by side on this machine, then loraforge again with no system BLAS (its built-in WebAssembly GEMM).
# Output: JSON lines (each loraforge line names its gemm); redirect into bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || ! ldconfig -p | grep -q libopenblas; then
  apt-get update -qq && apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null
fi
npm run build >/dev/null
node dist/bench/cpu_forward.js
LORAFORGE_BLAS=none node dist/bench/cpu_forward.js --no-torch
