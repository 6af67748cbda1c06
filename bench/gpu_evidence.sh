#!/usr/bin/env bash
# The GPU evidence behind docs/benchmarks.md, in one run on the GPU machine:
#   1. flora check --device cuda (bf16, the training default, and fp32)
#   2. the PyTorch reference (bench/torch_gpt2.py) and flora bench train on the same GPU, then the side-by-side table,
#      and the FLORA rows again with FLORA_RECOMPUTE=off (what recomputing the cheap activations costs and saves)
#   3. Hugging Face interop: a GPT-2 trained by Flora on the GPU, loaded by transformers, greedy continuations compared
# Usage: bench/gpu_evidence.sh OUT_DIR    (FLORA=path/to/flora, default ./.gpu/Flora.Cli, the self-contained build)
set -u
out=${1:?usage: bench/gpu_evidence.sh OUT_DIR}
flora=${FLORA:-./.gpu/Flora.Cli}
mkdir -p "$out"
step() { echo "== $1: exit code $2"; }

"$flora" check --device cuda --precision bf16 > "$out/check-bf16.txt" 2>&1; step "check bf16" $?
"$flora" check --device cuda --precision fp32 > "$out/check-fp32.txt" 2>&1; step "check fp32" $?

python3 bench/torch_gpt2.py --modes eager,compiled --warmup 6 --json "$out/torch.json" > "$out/torch.txt" 2>&1; step "PyTorch reference" $?
"$flora" bench train --device cuda --model gpt2-124m,gpt2-350m --optimizer adamw,adafactor,adafactor-momentum,flora:32,flora:256 --lomo both \
  --batch 8 --seq-len 1024 --tokenizer gpt2 --warmup 5 --steps 12 --json "$out/flora.json" --profile "$out/profile.md" > "$out/bench.txt" 2>&1
step "flora bench train" $?
"$flora" bench compare --ours "$out/flora.json" --torch "$out/torch.json" --out "$out/compare.md" > /dev/null 2>&1; step "bench compare" $?
# What recomputing the cheap activations costs and saves on the GPU: the same FLORA rows with it off.
FLORA_RECOMPUTE=off "$flora" bench train --device cuda --model gpt2-124m,gpt2-350m --optimizer flora:256 --lomo off \
  --batch 8 --seq-len 1024 --tokenizer gpt2 --warmup 5 --steps 12 --json "$out/flora-no-recompute.json" > "$out/bench-no-recompute.txt" 2>&1
step "flora bench train, FLORA_RECOMPUTE=off" $?

run=$(mktemp -d)/interop-run
"$flora" train --model gpt-tiny --tokenizer gpt2 --device cuda --steps 300 --seq-len 32 --batch 32 --eval-every 100 --checkpoint-every 300 --out "$run" > "$out/interop-train.txt" 2>&1
step "interop training" $?
ours=$("$flora" generate --checkpoint "$run" --greedy --print-ids --max-tokens 20 | sed -n 's/^ids: //p')
prompt=$(echo "$ours" | cut -d, -f1-3)
hf=$(python3 bench/hf_interop.py "$(ls -d "$run"/checkpoints/step-* | tail -1)" "$prompt" 20 2>> "$out/interop-hf.txt")
{ echo "flora:        $ours"; echo "transformers: $hf"; [ -n "$ours" ] && [ "$ours" = "$hf" ] && echo "greedy continuations identical" || echo "MISMATCH"; } > "$out/interop.txt"
cat "$out/interop.txt"
