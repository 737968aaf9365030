#!/usr/bin/env bash
# The long runs behind the README's Fashion-MNIST tables (make experiments). Each family is
# trained with the same settings; the runs take about 20-30 s per epoch each on 2 cores.
# Output: runs/fm-<family>.{out,csv,safetensors}, runs/fmg-<family>.* (group ARD), runs/cnn-*,
# runs/cnng-mn.* and runs/vggg-mn.* (convolutional nets; *-small.safetensors compressed).
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
# convolutional nets (paper sections 5.1-5.2): the Fashion-MNIST CNN with ARD (diag, mn) and
# group ARD (mn), and the VGG-like net with group ARD on Fashion-MNIST padded to 32x32 (a
# 20,000-image subset), each then compressed structurally (prune --structured --data)
CNN="1-10-mp-20-mp-40-mp-80-mp-flatten-10"
VGG="1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10"
EPOCHS_CNN=${EPOCHS_CNN:-30}
cnn() { # name family prior epochs extra...
  local name=$1 fam=$2 prior=$3 ep=$4
  shift 4
  "$K" train --data "$D" --family "$fam" --prior "$prior" --epochs "$ep" --batch 100 \
    --lr 1e-3 --lr-final 1e-4 --kl-warmup 5 --seed 1 --threads "$THREADS" --samples 10 \
    --eval-every 5 --progress lines --save "runs/$name.safetensors" --log "runs/$name.csv" \
    "$@" >"runs/$name.out" 2>&1
  "$K" prune "runs/$name.safetensors" --structured --out "runs/$name-small.safetensors" \
    --data "$D" >>"runs/$name.out" 2>&1
}
for fam in diag mn; do
  if [ "$PARALLEL" = 1 ]; then cnn "cnn-$fam" "$fam" ard "$EPOCHS_CNN" --arch "$CNN" &
  else cnn "cnn-$fam" "$fam" ard "$EPOCHS_CNN" --arch "$CNN"; fi
done
wait
cnn cnng-mn mn group "$EPOCHS_CNN" --arch "$CNN" &
cnn vggg-mn mn group 8 --arch "$VGG" --pad 2 --limit-train 20000 --lr-final 2e-4
wait
for f in runs/fm-*.out runs/fmg-*.out runs/cnn*.out runs/vgg*.out; do echo "== $f"; tail -n 24 "$f"; done
