#!/usr/bin/env bash
# The long runs behind the README's Fashion-MNIST tables (make experiments). Each family is
# trained with the same settings; an MLP epoch takes 10-30 s, a CNN epoch 70-150 s, a VGG-like
# epoch on 10,000 images 100-200 s, one thread each on a shared 2-core machine.
# Output: runs/fmb-<family>.* (the README's first table), runs/fm-<family>.{out,csv,safetensors},
# runs/fmn-<family>.* (--normalize),
# runs/fmg-<family>.* (group ARD), runs/cnn-*,
# runs/cnng-mn.* and runs/vggg-mn.* (convolutional nets; *-small.safetensors compressed).
#   EPOCHS=40 THREADS=1 PARALLEL=1 bash bench/experiments.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${FASHION:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-100}
EPOCHS_GROUP=${EPOCHS_GROUP:-20}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-1}
mkdir -p runs
# MLP with ARD: 100 epochs, lr 5e-4 decaying to 5e-5, exponential KL annealing over 30 epochs,
# then structured compression of each model
run() { # name family prior epochs extra...
  local name=$1 fam=$2 prior=$3 ep=$4
  shift 4
  "$K" train --data "$D" --arch 784-300-300-300-10 --act elu --family "$fam" --prior "$prior" \
    --epochs "$ep" --batch 100 --seed 1 --threads "$THREADS" --samples 10 --eval-every 10 \
    --progress lines --save "runs/$name.safetensors" --log "runs/$name.csv" "$@" \
    >"runs/$name.out" 2>&1
  "$K" prune "runs/$name.safetensors" --structured --out "runs/$name-small.safetensors" \
    --data "$D" >>"runs/$name.out" 2>&1
}
ARD_OPTS="--lr 5e-4 --lr-final 5e-5 --kl-schedule exp --kl-warmup 30"
for fam in diag mn mn-diag; do
  # shellcheck disable=SC2086
  if [ "$PARALLEL" = 1 ]; then run "fm-$fam" "$fam" ard "$EPOCHS" $ARD_OPTS &
  else run "fm-$fam" "$fam" ard "$EPOCHS" $ARD_OPTS; fi
done
wait
# the README's first table: --normalize, lr 1e-3 decaying to 1e-4, linear KL warm-up over 40
# epochs, prune-then-fine-tune over the last 40 (MN also with seed 2)
BEST_OPTS="--normalize --lr 1e-3 --lr-final 1e-4 --kl-warmup 40 --finetune-pruned 40"
for fam in diag mn mn-diag; do
  # shellcheck disable=SC2086
  if [ "$PARALLEL" = 1 ]; then run "fmb-$fam" "$fam" ard "$EPOCHS" $BEST_OPTS &
  else run "fmb-$fam" "$fam" ard "$EPOCHS" $BEST_OPTS; fi
done
# shellcheck disable=SC2086
run "fmb-mn-seed2" mn ard "$EPOCHS" $BEST_OPTS --seed 2
wait
# the paper's settings with --normalize (pixels standardized with the training statistics)
for fam in diag mn mn-diag; do
  # shellcheck disable=SC2086
  if [ "$PARALLEL" = 1 ]; then run "fmn-$fam" "$fam" ard "$EPOCHS" $ARD_OPTS --normalize &
  else run "fmn-$fam" "$fam" ard "$EPOCHS" $ARD_OPTS --normalize; fi
done
wait
# MN with --normalize and prune-then-fine-tune over the last 20 and 40 epochs
for ft in 20 40; do
  # shellcheck disable=SC2086
  if [ "$PARALLEL" = 1 ]; then run "fmnft$ft-mn" mn ard "$EPOCHS" $ARD_OPTS --normalize --finetune-pruned $ft &
  else run "fmnft$ft-mn" mn ard "$EPOCHS" $ARD_OPTS --normalize --finetune-pruned $ft; fi
done
wait
# group ARD on the MLP as in the README table (precisions by Adam only: --prior-update 0)
GROUP_OPTS="--lr 1e-3 --lr-final 1e-4 --kl-warmup 5 --prior-update 0"
for fam in diag mn; do
  # shellcheck disable=SC2086
  if [ "$PARALLEL" = 1 ]; then run "fmg-$fam" "$fam" group "$EPOCHS_GROUP" $GROUP_OPTS &
  else run "fmg-$fam" "$fam" group "$EPOCHS_GROUP" $GROUP_OPTS; fi
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
cnn cnng-mn mn group 20 --arch "$CNN" &
cnn vggg-mn mn group 10 --arch "$VGG" --pad 2 --limit-train 10000 --lr-final 2e-4 \
  --kl-warmup 3 --samples 5
wait
for f in runs/fm-*.out runs/fmg-*.out runs/cnn*.out runs/vgg*.out; do echo "== $f"; tail -n 24 "$f"; done
