#!/usr/bin/env bash
# The most informative part of the paper-scale reproductions that fits in one 10-minute command on one H100, under the rules
# of the reproductions (FLORA resamples during the run, LoRA as the paper ran it, several seeds, held-out pairs drawn at
# random, every claim judged on its own):
#
#   Table 2, GPT-2 124M: None, Naive, LoRA(256) and Flora(256), 3 seeds each, 1,000 steps of batch 4, so kappa is a fifth
#   of the run (200 instead of the paper's 1000) and every FLORA arm resamples 5 times (the last before the final
#   update); 100 test pairs per run. 12 runs of 25 to 50 s each: 433 s in all on an H100 on 2026-12-07
#   (docs/results/paper/table2-gpt/log.txt), so LIMIT=440 fits one 10-minute command with room to pack. The runs are
#   resumable: with LIMIT=SECONDS the reproduction stops after that long and the script packs OUT into OUT.tgz either way;
#   the next command, given the unpacked OUT again at the same path (each run's stored settings name its directory),
#   reuses every finished run (flora reproduce --resume) and goes on.
#
# What is cut, and why:
#   - the learning-rate sweeps: the fixed rates are the ones the sweep chose on 2026-12-07 (SWEEP=1, 18 runs in 614 s:
#     Naive 0.003 of 0.001 / 0.003 / 0.01 / 0.03, LoRA 0.01 of 0.003 / 0.01 / 0.03 / 0.1, both inside their grids;
#     docs/results/paper/table2-gpt); SWEEP=1 runs the sweep again (resumed into an OUT of fixed-rate runs, the runs at
#     the grid's rates are reused);
#   - ranks 8, 32 and 128 (Flora(256) and LoRA(256) are the paper's headline rows; each rank adds 3 runs, 75 s);
#   - the T5 setting, Table 3, Table 6 and the ablation at paper scale (each 20 to 60 minutes with the new rules:
#     see docs/results.md, "GPU time of each table");
#   - the paper's run length: in 1,000 steps every arm is still improving at its last step, so STEPS=5000 runs the
#     paper's 5,000 steps at the paper's kappa = 1000 (5 resamplings): about 2 to 4 minutes a run, 12 runs in three or
#     four commands of LIMIT=540 resumed into one OUT.

# Usage, on the GPU machine from the repository root: [LIMIT=SECONDS] [SWEEP=1] [STEPS=5000] [MODELS=t5] [TABLE=table3|table6] [WORKERS=N [GPUS=0,1,...]] bench/reproduce_gpu.sh OUT
#   WORKERS=N: N processes train the table's runs side by side (flora reproduce --workers N): these models leave most of an
#   H100 idle at batch 4, so several share one GPU; GPUS=0,1,... gives worker i GPU i (mod the list) on a machine with
#   several. The table is written once every run is stored, as without workers.
#   MODELS=t5: Table 2's encoder-decoder setting (T5 60M) instead of GPT-2 124M; no rate has been swept there under the
#   rules, so run it with SWEEP=1 first (about 20 runs; two or three commands of LIMIT=540).
#   FLORA=path/to/flora (default ./.gpu/Flora.Cli, the self-contained build); DATA=prepared data (default data/prepared/bible-v1,
#   made by 'flora data prepare' here and carried over: the GPU machine has no Bible packages).
# Then copy OUT/paper/TABLE (table2: to docs/results/paper/table2-MODELS) into docs/results/paper and run scripts/assemble_results.py.
set -u
out=${1:?usage: bench/reproduce_gpu.sh OUT}
flora=${FLORA:-./.gpu/Flora.Cli}
data=${DATA:-data/prepared/bible-v1}
# The prepared data (13 MB) may travel packed beside the binary: tar czf .gpu/bible.tgz -C data/prepared bible-v1
[ -f "$data/manifest.json" ] || [ ! -f .gpu/bible.tgz ] || { mkdir -p data/prepared && tar xzf .gpu/bible.tgz -C data/prepared; }
[ -f "$data/manifest.json" ] || { echo "no prepared data in $data: run 'flora data prepare' on a machine with the Bible packages and carry it"; exit 1; }
mkdir -p "$out"
start=$(date +%s)
# SWEEP=1: the scale's learning-rate grids, extended until the best rate is inside (Naive 0.003 / 0.01 / 0.03, LoRA
# 0.01 / 0.03 / 0.1), as the rules ask; resumed into the OUT of a fixed-rate run, its runs at the grid's rates are reused.
rates=(--naive-lrs 0.003 --lora-lrs 0.01); [ "${SWEEP:-0}" = 1 ] && rates=()
steps=${STEPS:-1000}
workers=(); [ -n "${WORKERS:-}" ] && workers=(--workers "$WORKERS"); [ -n "${GPUS:-}" ] && workers+=(--gpus "$GPUS")
models=${MODELS:-gpt}
case "${TABLE:-table2}" in
  table2)
    timeout "${LIMIT:-0}" "$flora" reproduce table2 --scale paper --device cuda --data "$data" --models "$models" --ranks 256 --steps "$steps" --seeds 3 \
      --test-pairs 100 "${rates[@]}" "${workers[@]}" --resume --out "$out" 2>&1 | tee -a "$out/table2-$models.log"
    echo "== table2 ($models): exit code ${PIPESTATUS[0]} (124: stopped by LIMIT; run again to resume), $(( $(date +%s) - start )) s" ;;
  # TABLE=table6: the whole table at paper scale with FLORA on AdamW's rate swept, 13 to 15 runs of about 30 s (it reads
  # each arm's best checkpoint for the state split, so run it in one command rather than resumed from a packed OUT).
  # TABLE=table3: T5 60M, five kappas at the scale's length (STEPS to override), about 20 runs of up to 2 minutes: resumable.
  table6|table3)
    extra=(); [ -n "${STEPS:-}" ] && extra=(--steps "$STEPS")
    timeout "${LIMIT:-0}" "$flora" reproduce "$TABLE" --scale paper --device cuda --data "$data" "${extra[@]}" "${workers[@]}" --resume --out "$out" 2>&1 | tee -a "$out/$TABLE.log"
    echo "== $TABLE: exit code ${PIPESTATUS[0]} (124: stopped by LIMIT; run again to resume), $(( $(date +%s) - start )) s" ;;
  *) echo "TABLE must be table2, table3 or table6"; exit 2 ;;
esac
# Workers left behind by LIMIT's signal (their runs stored so far stay; a resumed command reuses them).
pkill -f -- "reproduce .* --worker" 2>/dev/null || true
# The run directories without their checkpoints, the best one included (12 GPT-2 124M checkpoints with their optimizer
# state are gigabytes, and compressing them ran a command past its 10 minutes on 2026-12-07): the stored results, logs
# and metrics are what a resumed run and the results page need, small enough to come back from the GPU machine.
tar czf "$out.tgz" --exclude='checkpoints' --exclude='best' -C "$(dirname "$out")" "$(basename "$out")" && echo "packed $out.tgz ($(du -h "$out.tgz" | cut -f1))"
