#!/usr/bin/env bash
# Installs the PyTorch CPU baseline (Debian's python3-torch with OpenBLAS) and runs loraforge and PyTorch
# side by side on this machine, then loraforge again with no system BLAS (its built-in WebAssembly GEMM).
# Output: JSON lines (each loraforge line names its gemm), then one line per case with both loraforge runs'
# tokens/s over PyTorch's; redirect into bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || ! ldconfig -p | grep -q libopenblas; then
  apt-get update -qq && apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null
fi
npm run build >/dev/null
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
node dist/bench/cpu_forward.js | tee "$lines"
LORAFORGE_BLAS=none node dist/bench/cpu_forward.js --no-torch | tee -a "$lines"
# Each loraforge GEMM (OpenBLAS, then the built-in with no system BLAS) over PyTorch + OpenBLAS, per case.
node dist/bench/cpu_ratios.js < "$lines"
