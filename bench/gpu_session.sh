#!/usr/bin/env bash
# What the next GPU time should run first, most valuable first, in one command of at most TOTAL seconds (default 570),
# packing everything into OUT/session.tgz as it goes so that a command cut short keeps what it measured:
#   1. flora check --device cuda, bf16 and fp32
#   2. issue 12: the LoRA exports through transformers (merged, and PEFT with adapters only), beside the 8 fixture models
#      (EXPORTS=0 skips them)
#   3. issue 13: GPT-2 124M and 350M, FLORA r=256 and AdamW, Flora with and without the activations kept in bf16
#      (FLORA_BF16_ACTIVATIONS=off: fp32 activations), beside compiled PyTorch on the same shapes; the compare table
#      and one profile
# Then, as a command of its own: LIMIT=540 bench/reproduce_gpu.sh OUT/r (issue 15; resumable, run it again to go on).
# Usage, on the GPU machine from the repository root: bench/gpu_session.sh OUT [TOTAL]   (FLORA=path, default ./.gpu/Flora.Cli)
set -u
out=${1:?usage: bench/gpu_session.sh OUT [TOTAL]}
TOTAL=${2:-570}
F=${FLORA:-./.gpu/Flora.Cli}
export PYTHONUNBUFFERED=1
mkdir -p "$out/s"
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( TOTAL - 20 - ($(date +%s) - t0) )); [ $l -lt 1 ] && l=1; [ $l -lt $1 ] && echo $l || echo $1; }
pack() { tar czf "$out/session.tgz" -C "$out" s; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/s/gpu.txt"

for p in bf16 fp32; do
  timeout $(cap 120) "$F" check --device cuda --precision $p > "$out/s/check-$p.txt" 2>&1; el "check $p: exit code $?"
  grep -E "FAIL|checks failed" "$out/s/check-$p.txt"
done; pack

if [ "${EXPORTS:-1}" != 0 ]; then
FIX=tests/fixtures/hf/models; rt=$(mktemp -d); runs=$(mktemp -d)
for m in gpt2 gpt2-legacy llama llama-sharded llama-bf16 llama-untied qwen2 mistral; do
  "$F" export --checkpoint $FIX/$m --out $rt/$m --check-ids $FIX/$m/expected.safetensors > /dev/null 2>> "$out/s/export.txt"; done
{ "$F" train --model llama-tiny --tokenizer bpe:300 --steps 30 --out $runs/base &&
  "$F" export --checkpoint $runs/base --out $rt/base --check-ids $FIX/llama/expected.safetensors &&
  "$F" train --init-from $rt/base --lora 8 --optimizer adamw --steps 30 --out $runs/lora &&
  "$F" export --checkpoint $runs/lora --out $rt/lora-merged --merge-lora --check-ids $FIX/llama/expected.safetensors &&
  "$F" train --init-from $rt/base --lora 8 --lora-adapters-only --optimizer adamw --steps 30 --out $runs/lora-only &&
  "$F" export --checkpoint $runs/lora-only --out $rt/lora-peft --peft --check-ids $FIX/llama/expected.safetensors; } > "$out/s/lora-runs.txt" 2>&1
el "LoRA runs and exports: exit code $?"
timeout $(cap 90) python3 bench/hf_roundtrip.py $rt/* 2>&1 | grep -v "Loading weights" > "$out/s/roundtrip.txt"; el "round trip"
tail -12 "$out/s/roundtrip.txt"; pack
fi

timeout $(cap 180) "$F" bench train --device cuda --model gpt2-124m,gpt2-350m --optimizer adamw,adafactor,flora:256 --batch 8 --seq-len 1024 \
  --tokenizer gpt2 --warmup 5 --steps 12 --json "$out/s/flora.json" --profile "$out/s/profile.md" > "$out/s/bench.txt" 2>&1
el "flora bench train: exit code $?"; grep -E "│ gpt2" "$out/s/bench.txt"; pack
FLORA_BF16_ACTIVATIONS=off timeout $(cap 90) "$F" bench train --device cuda --model gpt2-124m,gpt2-350m --optimizer adamw,flora:256 --batch 8 --seq-len 1024 \
  --tokenizer gpt2 --warmup 5 --steps 12 > "$out/s/bench-fp32-activations.txt" 2>&1
el "flora bench train, FLORA_BF16_ACTIVATIONS=off: exit code $?"; grep -E "│ gpt2" "$out/s/bench-fp32-activations.txt"; pack
timeout $(cap 400) python3 bench/torch_gpt2.py --optimizers adamw,flora:256 --modes compiled --warmup 6 --json "$out/s/torch.json" \
  > "$out/s/torch.txt" 2>&1; el "PyTorch compiled: exit code $?"; grep -v -i warn "$out/s/torch.txt" | tail -6
[ -f "$out/s/torch.json" ] && "$F" bench compare --ours "$out/s/flora.json" --torch "$out/s/torch.json" --out "$out/s/compare.md" > /dev/null 2>&1
pack; el "packed $out/session.tgz"
