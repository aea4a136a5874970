#!/usr/bin/env bash
# Packs .device/ for the GPU machine (../shared/device/pack.sh), then drops the chart libraries (vega and its
# d3 dependencies, ~25 MiB) that GPU tests and benchmarks never load, to stay under the 64 MiB carry limit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
../shared/device/pack.sh
rm -rf .device/node_modules/vega* .device/node_modules/d3-* .device/node_modules/topojson-client .device/node_modules/delaunator .device/node_modules/robust-predicates
du -sh .device | sed 's/^/pack-device: /'
