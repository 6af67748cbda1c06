#!/usr/bin/env bash
# Issue 12 on the GPU machine: bf16 weights conform on the GPU, and the Llama 1B to 7B shapes train on one card.
#   flora: 1. flora check --device cuda (bf16 products: the bf16-weight rows are among the others)
#          2. flora bench memory --model llama-7b (the CPU-side estimate per ledger tag, to set beside the measurement)
#          3. flora bench train: llama-1b, llama-3b, llama-7b with bf16 weights, LOMO, activation checkpointing,
#             FLORA r = 256, batch 1 x 2048, each preset's published vocabulary (128,256; 128,256; 32,000); then
#             llama-7b with only 24, 16, 8 and 0 of its 32 blocks checkpointed (--checkpoint-blocks)
#   torch: 4. bench/torch_llama.py: PyTorch on the same shapes with bf16 weights (AdamW, Adafactor, FLORA in the
#             official code's style; configurations that do not fit in 80 GB are reported as such)
#          5. flora bench compare: side by side, with the 7B memory target (under 24 GiB) and tokens/s against the
#             fastest PyTorch configuration that fitted
# Usage: bench/gpu_large_models.sh OUT_DIR [flora|torch|all]   (FLORA=path/to/flora, default ./.gpu/Flora.Cli; SKIP_CHECK=1 skips step 1)
# The two stages take about 5 and 8 minutes on an H100; run them as two commands where one command may run 10 minutes.
set -u
out=${1:?usage: bench/gpu_large_models.sh OUT_DIR [flora|torch|all]}
stage=${2:-all}
flora=${FLORA:-./.gpu/Flora.Cli}
mkdir -p "$out"
step() { echo "== $1: exit code $2"; }

if [ "$stage" = flora ] || [ "$stage" = all ]; then
  if [ -z "${SKIP_CHECK:-}" ]; then
    "$flora" check --device cuda --precision bf16 > "$out/check-bf16.txt" 2>&1; step "check bf16" $?
    grep -E "bf16 weight|StochasticRound|bf16 table|Copy fp32|bf16 weights" "$out/check-bf16.txt"
  fi
  "$flora" bench memory --model llama-7b > "$out/estimate.txt" 2>&1; step "memory estimate" $?
  grep "estimated peak" "$out/estimate.txt"
  "$flora" bench train --device cuda --model llama-1b,llama-3b,llama-7b --weights bf16 --lomo on --activation-checkpointing \
    --optimizer flora:256 --batch 1 --seq-len 2048 --vocabulary published --warmup 2 --steps 5 \
    --json "$out/flora.json" --profile "$out/profile.md" > "$out/bench.txt" 2>&1
  step "flora bench train" $?
  cat "$out/bench.txt"
  # Memory for speed at 7B: only the first N of 32 blocks checkpointed (0: none), each row beside the estimate's.
  "$flora" bench train --device cuda --model llama-7b --weights bf16 --lomo on --activation-checkpointing --checkpoint-blocks 24,16,8,0 \
    --optimizer flora:256 --batch 1 --seq-len 2048 --vocabulary published --warmup 2 --steps 5 \
    --json "$out/flora-blocks.json" > "$out/bench-blocks.txt" 2>&1
  step "flora bench train, partial checkpointing" $?
  cat "$out/bench-blocks.txt"
fi
if [ "$stage" = torch ] || [ "$stage" = all ]; then
  python3 bench/torch_llama.py --json "$out/torch.json" > "$out/torch.txt" 2>&1; step "PyTorch reference" $?
  cat "$out/torch.txt"
  if [ -f "$out/flora.json" ]; then
    "$flora" bench compare --ours "$out/flora.json" --torch "$out/torch.json" --out "$out/compare.md" > /dev/null 2>&1; step "bench compare" $?
    sed -n '/bf16 weights (issue 12)/,$p' "$out/compare.md"
  fi
fi
