#!/usr/bin/env bash
# Packs .device/ for the GPU machine: ../shared/device/pack.sh (Node + production dependencies), plus the `openai`
# client that the serve tests use, with node_modules as one xz tarball so everything fits the 64 MiB carry limit.
# On the GPU machine start every command with:
#   tar -xJf .device/node_modules.tar.xz -C .device && source .device/boot.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
../shared/device/pack.sh >/dev/null
cp -r node_modules/openai .device/node_modules/openai
tar -cJf .device/node_modules.tar.xz -C .device node_modules
rm -rf .device/node_modules
du -sh .device | sed 's/^/pack-device: /'
