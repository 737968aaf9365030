#!/usr/bin/env bash
# The long runs behind the README's Fashion-MNIST tables (make experiments). Each family is
# trained with the same settings; the runs take about 20-30 s per epoch each on 2 cores.
# Output: runs/fm-<family>.{out,csv,safetensors} and runs/fmg-<family>.* (group ARD).
#   EPOCHS=40 THREADS=1 PARALLEL=1 bash bench/experiments.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${FASHION:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-40}
EPOCHS_GROUP=${EPOCHS_GROUP:-20}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-1}
mkdir -p runs
run() { # name family prior warmup epochs
  "$K" train --data "$D" --arch 784-300-300-300-10 --act elu --family "$2" --prior "$3" \
    --epochs "$5" --batch 100 --lr 1e-3 --lr-final 1e-4 --kl-warmup "$4" --seed 1 \
    --threads "$THREADS" --samples 10 --eval-every 10 --progress lines \
    --save "runs/$1.safetensors" --log "runs/$1.csv" >"runs/$1.out" 2>&1
}
for fam in diag mn mn-diag; do
  if [ "$PARALLEL" = 1 ]; then run "fm-$fam" "$fam" ard 10 "$EPOCHS" & else run "fm-$fam" "$fam" ard 10 "$EPOCHS"; fi
done
wait
for fam in diag mn; do
  if [ "$PARALLEL" = 1 ]; then run "fmg-$fam" "$fam" group 5 "$EPOCHS_GROUP" & else run "fmg-$fam" "$fam" group 5 "$EPOCHS_GROUP"; fi
done
wait
for f in runs/fm-*.out runs/fmg-*.out; do echo "== $f"; tail -n 14 "$f"; done
