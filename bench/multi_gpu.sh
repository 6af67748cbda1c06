#!/usr/bin/env bash
# Data-parallel evidence for docs/distributed.md, on the GPU machine (issue 16).
#   (a) one GPU: a 1-rank NCCL run (flora launch -n 1) against the single-GPU trainer, loss logs compared
#       bit for bit, for plain gradients, LOMO and compressed accumulation (about a minute)
#   (b) only with 2 or more GPUs:
#       b1. 2 GPUs x batch B against 1 GPU x batch 2B, 50 steps, loss curves compared
#       b2. scaling: tokens/s of GPT-2 124M and 350M on 1, 2, 4, 8 GPUs (as many as there are)
#       b3. compressed against plain all-reduce on every GPU: bytes per step, tokens/s, validation loss after the same tokens
# Usage: bench/multi_gpu.sh OUT_DIR [FLORA_BINARY]    (default binary ./.gpu/Flora.Cli, the self-contained build)
# Knobs (environment): B1_STEPS (50), SCALE_STEPS (30), SCALE_MODELS ("gpt2-124m gpt2-350m"),
#   BUDGET_STEPS (150), COMPRESSED_RANKS ("256 64"). Everything lands in OUT_DIR; the summary is OUT_DIR/summary.md.
set -u
out=${1:?usage: bench/multi_gpu.sh OUT_DIR [FLORA_BINARY]}
flora=${2:-./.gpu/Flora.Cli}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export NCCL_NVLS_ENABLE=0                       # NVLink multicast stays off (flora sets it in every rank as well)
summary="$out/summary.md"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
step() { echo "== $1: exit code $2" | tee -a "$out/steps.txt"; }

# GPUs: CUDA_VISIBLE_DEVICES when set, else nvidia-smi, else PyTorch.
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
elif command -v nvidia-smi > /dev/null; then
  gpus=$(nvidia-smi -L | grep -c '^GPU')
else
  gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
fi
say "# Data parallel on $(hostname): $gpus GPU(s), $("$flora" --version 2>/dev/null | head -1)"
say ""
if [ "$gpus" -lt 1 ]; then say "no GPU found: nothing to run"; exit 1; fi

# compare A B: per-step train and validation losses of two runs (metrics.csv), exact and max |difference|.
compare() {
  python3 - "$1/metrics.csv" "$2/metrics.csv" <<'EOF'
import csv, sys
def rows(p):
    with open(p) as f:
        return [(r["step"], r["train_loss"], r["val_loss"]) for r in csv.DictReader(f)]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if len(a) != len(b) or not a:
    print(f"steps differ: {len(a)} vs {len(b)} rows"); sys.exit(0)
exact = all(x == y for x, y in zip(a, b))
d = max(abs(float(x[1]) - float(y[1])) for x, y in zip(a, b))
v = [abs(float(x[2]) - float(y[2])) for x, y in zip(a, b) if x[2] and y[2]]
print(f"{len(a)} steps, {'identical bit for bit' if exact else 'NOT identical'}; max |train loss difference| {d:.3g}"
      + (f", max |validation loss difference| {max(v):.3g}" if v else ""))
EOF
}

# median tokens/s of a run's steps after the first 10 (the log of rank 0 holds the tokens of all ranks)
tokens_per_second() {
  python3 - "$1/metrics.csv" <<'EOF'
import csv, statistics, sys
with open(sys.argv[1]) as f:
    t = [float(r["tokens_per_second"]) for r in csv.DictReader(f)][10:]
print(f"{statistics.median(t):.0f}" if t else "nan")
EOF
}

report() {   # report RUN KEY: a field of the run's data-parallel.json
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/data-parallel.json" "$2" 2>/dev/null || echo "n/a"
}

final_validation() {
  python3 - "$1/metrics.csv" <<'EOF'
import csv, sys
with open(sys.argv[1]) as f:
    v = [r["val_loss"] for r in csv.DictReader(f) if r["val_loss"]]
print(v[-1] if v else "nan")
EOF
}

# ---- (a) one GPU: flora launch -n 1 (NCCL, one rank) against the single-GPU trainer ----------------------------------
say "## (a) One rank through NCCL against the single-GPU trainer"
say ""
small=(--device cuda --model gpt-small --tokenizer gpt2 --seq-len 128 --batch 8 --steps 30 --eval-every 10 --checkpoint-every 1000)
declare -A paths=(
  [plain]=""
  [lomo]="--lomo"
  [compressed-accumulation]="--accumulate compressed --tau 2"
)
for name in plain lomo compressed-accumulation; do
  extra=${paths[$name]}
  rm -rf "$out/a-$name-single" "$out/a-$name-single-again" "$out/a-$name-nccl"
  "$flora" train "${small[@]}" $extra --out "$out/a-$name-single" > "$out/a-$name-single.txt" 2>&1; step "a $name single" $?
  if [ "$name" = plain ]; then
    "$flora" train "${small[@]}" $extra --out "$out/a-$name-single-again" > "$out/a-$name-single-again.txt" 2>&1; step "a $name single again" $?
    say "- $name, single GPU run twice (the GPU's own run-to-run noise): $(compare "$out/a-$name-single" "$out/a-$name-single-again")"
  fi
  "$flora" launch -n 1 -- train "${small[@]}" $extra --out "$out/a-$name-nccl" > "$out/a-$name-nccl.txt" 2>&1; step "a $name nccl" $?
  say "- $name, 1-rank NCCL against single GPU: $(compare "$out/a-$name-single" "$out/a-$name-nccl")"
done
rm -rf "$out/a-compressed-allreduce"
"$flora" launch -n 1 -- train "${small[@]}" --allreduce compressed --out "$out/a-compressed-allreduce" > "$out/a-compressed-allreduce.txt" 2>&1
step "a compressed all-reduce (1 rank)" $?
say "- 1 rank, --allreduce compressed (r = 32) runs: $(report "$out/a-compressed-allreduce" payloadBytesPerStep) of $(report "$out/a-compressed-allreduce" fullBytesPerStep) bytes per step, $(report "$out/a-compressed-allreduce" compressedMatrices) matrices compressed"
say ""

if [ "$gpus" -lt 2 ]; then
  say "## (b) skipped: this machine has $gpus GPU; the multi-GPU measurements (2 GPUs against 1, scaling, compressed all-reduce) need 2 or more"
  exit 0
fi

# ---- (b1) 2 GPUs x B against 1 GPU x 2B -------------------------------------------------------------------------------
say "## (b1) 2 GPUs x batch 4 against 1 GPU x batch 8, GPT-2 124M, ${B1_STEPS:-50} steps"
say ""
b1=(--device cuda --model gpt2-124m --tokenizer gpt2 --seq-len 512 --steps "${B1_STEPS:-50}" --eval-every 25 --checkpoint-every 1000)
rm -rf "$out/b1-one" "$out/b1-one-again" "$out/b1-two"
"$flora" train "${b1[@]}" --batch 8 --out "$out/b1-one" > "$out/b1-one.txt" 2>&1; step "b1 one GPU" $?
"$flora" train "${b1[@]}" --batch 8 --out "$out/b1-one-again" > "$out/b1-one-again.txt" 2>&1; step "b1 one GPU again" $?
"$flora" launch -n 2 -- train "${b1[@]}" --batch 4 --out "$out/b1-two" > "$out/b1-two.txt" 2>&1; step "b1 two GPUs" $?
say "- 1 GPU x 8, run twice (noise floor): $(compare "$out/b1-one" "$out/b1-one-again")"
say "- 2 GPUs x 4 against 1 GPU x 8: $(compare "$out/b1-one" "$out/b1-two")"
say ""

# ---- (b2) scaling ------------------------------------------------------------------------------------------------------
say "## (b2) Scaling: tokens/s (median of steps 11..${SCALE_STEPS:-30}), batch 8 x 1024 per GPU, FLORA r = 256, plain all-reduce"
say ""
say "| model | GPUs | tokens/s | per GPU | efficiency | all-reduce MiB/step/rank |"
say "| --- | ---: | ---: | ---: | ---: | ---: |"
for model in ${SCALE_MODELS:-gpt2-124m gpt2-350m}; do
  base=""
  for n in 1 2 4 8; do
    [ "$n" -gt "$gpus" ] && break
    run="$out/b2-$model-$n"
    rm -rf "$run"
    args=(--device cuda --model "$model" --tokenizer gpt2 --optimizer flora --rank 256 --batch 8 --seq-len 1024
          --steps "${SCALE_STEPS:-30}" --warmup 5 --eval-every 100000 --checkpoint-every 100000 --out "$run")
    if [ "$n" -eq 1 ]; then "$flora" train "${args[@]}" > "$run.txt" 2>&1; else "$flora" launch -n "$n" -- train "${args[@]}" > "$run.txt" 2>&1; fi
    step "b2 $model $n GPU(s)" $?
    tps=$(tokens_per_second "$run")
    [ "$n" -eq 1 ] && base=$tps
    eff=$(python3 -c "import sys; t, b, n = map(float, sys.argv[1:]); print(f'{t / (n * b):.1%}')" "$tps" "$base" "$n" 2>/dev/null || echo n/a)
    mib=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / 1048576:.1f}')" "$(report "$run" payloadBytesPerStep)" 2>/dev/null || echo "-")
    say "| $model | $n | $tps | $(python3 -c "import sys; print(f'{float(sys.argv[1]) / int(sys.argv[2]):.0f}')" "$tps" "$n" 2>/dev/null) | $eff | $mib |"
  done
done
say ""

# ---- (b3) compressed against plain all-reduce, same token budget --------------------------------------------------------
n=$(( gpus > 8 ? 8 : gpus ))
steps=${BUDGET_STEPS:-150}
say "## (b3) Compressed against plain all-reduce: $n GPUs, GPT-2 124M, $steps steps of $n x 4 x 1024 tokens ($(( steps * n * 4096 )) tokens), FLORA r = 256"
say ""
say "| all-reduce | MiB/step/rank | vs full gradients | tokens/s | final validation loss |"
say "| --- | ---: | ---: | ---: | ---: |"
b3=(--device cuda --model gpt2-124m --tokenizer gpt2 --optimizer flora --rank 256 --batch 4 --seq-len 1024 --steps "$steps"
    --eval-every $(( steps / 3 )) --checkpoint-every 100000)
for arm in plain ${COMPRESSED_RANKS:-256 64}; do
  run="$out/b3-$arm"
  rm -rf "$run"
  if [ "$arm" = plain ]; then extra=(); label="plain"; else extra=(--allreduce compressed --allreduce-rank "$arm"); label="compressed, r = $arm"; fi
  "$flora" launch -n "$n" -- train "${b3[@]}" "${extra[@]}" --out "$run" > "$run.txt" 2>&1; step "b3 $label" $?
  payload=$(report "$run" payloadBytesPerStep); full=$(report "$run" fullBytesPerStep)
  say "| $label | $(python3 -c "import sys; print(f'{float(sys.argv[1]) / 1048576:.1f}')" "$payload" 2>/dev/null) | $(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.2f}x less')" "$payload" "$full" 2>/dev/null) | $(tokens_per_second "$run") | $(final_validation "$run") |"
done
say ""
say "(logs, metrics and data-parallel.json of every run are in $out)"
