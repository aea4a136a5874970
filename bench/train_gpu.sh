#!/usr/bin/env bash
# LoRA / QLoRA training benchmark on the GPU machine, both stacks in one command; prints JSON lines.
#   source .device/boot.sh && bash bench/train_gpu.sh | tee $OUT/train_gpu.jsonl
# Expects dist/ built (npx tsc -p tsconfig.json) and carried. Each case runs in its own process under a time
# limit, so one failure leaves the others' lines; a failed case prints {"error": ...} on stdout, its log on stderr.
# Every loraforge case also prints a per-kernel profile line of one extra step (LORAFORGE_PROFILE=1).
# Environment (defaults: everything, about 10 minutes on an H200):
#   LORAFORGE_CASES  library cases (the LoRA layers as src/peft runs them)
#   PEFT_SHAPES      PyTorch + PEFT baselines (bench/peft_baseline.py); PEFT=0 skips
#   STEPS            timed steps per case; STEPS_LARGE for the 70B-class case; CASE_TIMEOUT seconds per case
set -uo pipefail
cd "$(dirname "$0")/.."
CASES=${LORAFORGE_CASES-"tiny llama-1b llama-8b llama-8b-qlora llama-70b-qlora qwen3-8b qwen3-8b-8k gemma3-4b gemma3-4b-8k"}
PEFT_SHAPES=${PEFT_SHAPES-"llama-1b llama-8b qwen3-8b qwen3-8b-8k gemma3-4b gemma3-4b-8k"}
STEPS=${STEPS:-10}
CASE_TIMEOUT=${CASE_TIMEOUT:-300}

fail() { printf '{"stack":"%s","case":"%s","error":"exit status %s"}\n' "$1" "$2" "$3"; }

run_case() {
  local c=$1 steps=$STEPS warmup=2
  case $c in *70b*) steps=${STEPS_LARGE:-3} warmup=1 ;; esac
  LORAFORGE_PROFILE=1 timeout "$CASE_TIMEOUT" node --max-old-space-size=16384 dist/bench/train_gpu.js "$c" "$steps" "$warmup" || fail loraforge "$c" $?
}

for c in $CASES; do run_case "$c"; done
if [ "${PEFT:-1}" != 0 ]; then
  for s in $PEFT_SHAPES; do
    PYTHONUNBUFFERED=1 timeout "$CASE_TIMEOUT" python3 bench/peft_baseline.py "$s" --steps "$STEPS" || fail pytorch+peft "$s" $?
  done
fi
