#!/usr/bin/env bash
# Multi-adapter serving throughput on the GPU machine, loraforge and transformers + PEFT in one command; prints
# JSON lines (one per stack and adapter count).
#   source .device/boot.sh && bash bench/serve_gpu.sh | tee $OUT/serve_gpu.jsonl
# Expects dist/ built (npx tsc -p tsconfig.json) and carried. Same random shapes (bench/shapes.json; SHAPES picks
# them, default llama-1b and qwen3-8b), bf16, batch, prompt and
# new-token counts on both sides; LoRA r16 on all seven projections; rows spread round-robin over the adapters.
# loraforge runs once per ADAPTER_DTYPES entry ("bfloat16 float32": the server's default, the model's dtype, and
# PEFT's float32); PEFT keeps its adapters in float32.
# Environment: BATCH (64), PROMPT (128), NEW (128), ADAPTERS ("0,1,8,64"), REPEAT (3, loraforge rounds),
# CASE_TIMEOUT seconds per stack (300), PEFT=0 skips the baseline.
set -uo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-64}
PROMPT=${PROMPT:-128}
NEW=${NEW:-128}
ADAPTERS=${ADAPTERS:-0,1,8,64}
REPEAT=${REPEAT:-3}
CASE_TIMEOUT=${CASE_TIMEOUT:-300}
ADAPTER_DTYPES=${ADAPTER_DTYPES:-"bfloat16 float32"}
SHAPES=${SHAPES:-"llama-1b qwen3-8b"}

fail() { printf '{"bench":"serve","stack":"%s","error":"exit status %s"}\n' "$1" "$2"; }

for shape in $SHAPES; do
  for dt in $ADAPTER_DTYPES; do
    timeout "$CASE_TIMEOUT" node dist/bench/serve.js --device cuda --dtype bfloat16 --shape "$shape" --adapter-dtype "$dt" \
      --batch "$BATCH" --prompt "$PROMPT" --new "$NEW" --adapters "$ADAPTERS" --repeat "$REPEAT" || fail loraforge $?
  done
  if [ "${PEFT:-1}" != 0 ]; then
    PYTHONUNBUFFERED=1 timeout "$CASE_TIMEOUT" python3 bench/peft_serve_baseline.py --shape "$shape" \
      --batch "$BATCH" --prompt "$PROMPT" --new "$NEW" --adapters "$ADAPTERS" || fail "transformers+peft" $?
  fi
done
