#!/usr/bin/env bash
# One command on the GPU machine (about 7 minutes on an H100) that decides whether CUDA work written without a GPU may
# merge, and measures it beside compiled PyTorch:
#   1. flora check --device cuda in bf16 and fp32 (every conformance row, the new ones among them)
#   2. GPT-2 124M and 350M, batch 8 x 1024: Flora's AdamW, Adafactor and FLORA r=256 (profiled), and PyTorch's
#      compiled fused AdamW on the same card, then the side-by-side table
#   3. llama-7b, FLORA r=256 + LOMO + bf16 weights, 1 x 2048: every block checkpointed (profiled), then 24, 16 and 0
#      of its 32 blocks checkpointed
# Each stage's outputs go into one tarball, OUT_DIR/STAGE.tgz (one archive per stage is simpler to copy off the machine than many files); stages 1
# and 2 take about 5 minutes, stage 3 about 3, so where one command may run 10 minutes, run "check,gpt2" then "llama".
# Usage: bench/gpu_verify.sh OUT_DIR [STAGES]   STAGES: check,gpt2,llama (the default: all three)
#        (FLORA=path/to/flora, default ./.gpu/Flora.Cli, the self-contained build)
set -u
out=${1:?usage: bench/gpu_verify.sh OUT_DIR [check,gpt2,llama]}
stages=",${2:-check,gpt2,llama},"
flora=${FLORA:-./.gpu/Flora.Cli}
work=$(mktemp -d)
step() { echo "== $1: exit code $2"; }
card() { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$work/gpu.txt"; }
finish() { mkdir -p "$out"; tar czf "$out/$1.tgz" -C "$work" . && rm -rf "$work" && mkdir -p "$work" && card; }

card; cat "$work/gpu.txt"
if [[ $stages == *,check,* ]]; then
for precision in bf16 fp32; do
  timeout 120 "$flora" check --device cuda --precision $precision > "$work/check-$precision.txt" 2>&1; step "check $precision" $?
  grep -E "FAIL|checks" "$work/check-$precision.txt"
done
finish check
fi

if [[ $stages == *,gpt2,* ]]; then

timeout 90 "$flora" bench train --device cuda --model gpt2-124m,gpt2-350m --optimizer adamw,adafactor,flora:256 --batch 8 --seq-len 1024 \
  --tokenizer gpt2 --warmup 5 --steps 12 --json "$work/flora.json" --profile "$work/profile.md" > "$work/bench.txt" 2>&1
step "flora bench train, GPT-2" $?
grep -E "│ gpt2" "$work/bench.txt"
timeout 150 python3 bench/torch_gpt2.py --optimizers adamw --modes compiled --warmup 6 --json "$work/torch.json" > "$work/torch.txt" 2>&1
step "PyTorch compiled AdamW" $?
timeout 30 "$flora" bench compare --ours "$work/flora.json" --torch "$work/torch.json" --out "$work/compare.md" > /dev/null 2>&1; step "bench compare" $?
finish gpt2
fi

if [[ $stages == *,llama,* ]]; then

timeout 90 "$flora" bench train --device cuda --model llama-7b --weights bf16 --lomo on --activation-checkpointing \
  --optimizer flora:256 --batch 1 --seq-len 2048 --vocabulary published --warmup 2 --steps 5 \
  --json "$work/llama.json" --profile "$work/llama-profile.md" > "$work/llama-bench.txt" 2>&1
step "flora bench train, llama-7b" $?
grep -E "│ llama|peak of" "$work/llama-bench.txt"
timeout 150 "$flora" bench train --device cuda --model llama-7b --weights bf16 --lomo on --activation-checkpointing --checkpoint-blocks 24,16,0 \
  --optimizer flora:256 --batch 1 --seq-len 2048 --vocabulary published --warmup 2 --steps 5 \
  --json "$work/llama-blocks.json" > "$work/llama-blocks.txt" 2>&1
step "flora bench train, llama-7b with 24, 16 and 0 blocks checkpointed" $?
grep -E "│ llama|peak of" "$work/llama-blocks.txt"
finish llama
fi
rm -rf "$work"
