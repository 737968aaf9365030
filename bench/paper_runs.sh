#!/usr/bin/env bash
# The paper-scale convolutional runs (docs/experiments.md): the VGG-like network
#   1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10
# on Fashion-MNIST padded to 32x32 (all 60,000 training images), Adam with batch 100 and
# learning rate 5e-4 (the paper's), exponential KL annealing over the first third of the epochs:
#   s52-*   paper section 5.2 / Figure 4: one learned prior variance per layer (--prior scalar),
#           DIAG vs MN
#   s53-*   section 5.3 / Figure 5 and Table 1: group ARD (rows and columns) with horizontal
#           flips, DIAG, MN and MN+DIAG, then structured compression (kronvi prune --structured)
#   t2-mn   Table 2: the x2-width network 1-20-20-20-mp-40-40-40-mp-80-80-80-mp-40-40-40-mp-
#           flatten-10 with MN, group ARD and flips
#   *-s2    the headline rows again with seed 2
#   mlp-*   the 784-300-300-300-10 MLP with the per-weight ARD prior (the README's first table's
#           settings: --normalize, lr 1e-3 -> 1e-4, KL warm-up 40, prune-then-fine-tune 40):
#           DIAG with seed 2, DIAG and MN with 200 epochs, MN with group ARD (whether a pruned
#           Bayesian MLP reaches the point network's accuracy). MN+DIAG with the stochastic
#           Lanczos bound is not in the list: its 784 x 300 layer costs about 5.6 s a step
#           (bench/results/curv/slq_fashion.md), an hour per epoch.
# Every run checkpoints after each epoch and resumes where it stopped: run the script again to
# continue (the epochs of a run are fixed by EPOCHS / EPOCHS_T2 when it starts). One thread per
# run; RUNS runs side by side (default 1). Several copies may run at once (e.g. one with
# REVERSE=1): each run is claimed by a lock directory holding the claiming process's id, and a
# lock whose process is gone is taken over. ONLY=name1,name2 restricts the list.
#   bash bench/paper_runs.sh   (KRONVI=build/kronvi OUT=runs/paper EPOCHS=30 EPOCHS_T2=12 RUNS=1)
set -eu
cd "$(dirname "$0")/.."
KR=${KRONVI:-build/kronvi}
D=${FASHION:-/usr/share/datasets/fashion-mnist}
O=${OUT:-runs/paper}
EPOCHS=${EPOCHS:-30}
EPOCHS_T2=${EPOCHS_T2:-12}
RUNS=${RUNS:-1}
REVERSE=${REVERSE:-0}
ONLY=${ONLY:-}
EXTRA=${EXTRA:-} # more kronvi train flags, e.g. "--limit-train 500 --limit-test 200" to try the script
VGG=1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10
VGG2=1-20-20-20-mp-40-40-40-mp-80-80-80-mp-40-40-40-mp-flatten-10
MLP=784-300-300-300-10
mkdir -p "$O"

# shellcheck source=bench/runs_lib.bash
. bench/runs_lib.bash

one() { # name arch family prior epochs seed extra...
  local n=$1 arch=$2 fam=$3 prior=$4 ep=$5 seed=$6
  shift 6
  [ -f "$O/$n.done" ] && return 0
  claim "$O/$n.lock" || return 0
  local res=() base warm=$((ep / 3))
  [ "$warm" -ge 1 ] || warm=1
  if [ "${n#mlp-}" != "$n" ]; then # the MLP runs: the README's first table's settings
    base=(--normalize --lr 1e-3 --lr-final 1e-4 --kl-warmup 40 --finetune-pruned 40)
  else # the convolutional nets: padded to 32x32, the paper's learning rate and KL schedule
    base=(--pad 2 --lr 5e-4 --kl-schedule exp --kl-warmup "$warm")
  fi
  [ -f "$O/$n.safetensors" ] && res=(--resume "$O/$n.safetensors")
  echo "$(date -u '+%F %T') start $n (${res[*]:-fresh})" >>"$O/$n.out"
  "$KR" train --data "$D" "${base[@]}" --arch "$arch" --act elu --family "$fam" --prior "$prior" \
    --epochs "$ep" --batch 100 --seed "$seed" \
    --threads 1 --fixed-threads --progress lines --save "$O/$n.safetensors" --log "$O/$n.csv" \
    $EXTRA "$@" "${res[@]}" >>"$O/$n.out" 2>&1
  if [ "$prior" = group ]; then
    "$KR" prune "$O/$n.safetensors" --structured --out "$O/$n-small.safetensors" --data "$D" \
      >"$O/$n.prune" 2>&1
  fi
  touch "$O/$n.done"
  rm -rf "$O/$n.lock"
}

jobs_list=(
  "s52-diag $VGG diag scalar $EPOCHS 1"
  "s52-mn $VGG mn scalar $EPOCHS 1"
  "s53-diag $VGG diag group $EPOCHS 1 --hflip"
  "s53-mn $VGG mn group $EPOCHS 1 --hflip"
  "s53-mn-diag $VGG mn-diag group $EPOCHS 1 --hflip"
  "t2-mn $VGG2 mn group $EPOCHS_T2 1 --hflip"
  "s52-diag-s2 $VGG diag scalar $EPOCHS 2"
  "s52-mn-s2 $VGG mn scalar $EPOCHS 2"
  "s53-mn-s2 $VGG mn group $EPOCHS 2 --hflip"
  "s53-diag-s2 $VGG diag group $EPOCHS 2 --hflip"
  "mlp-diag-s2 $MLP diag ard 100 2"
  "mlp-diag-e200 $MLP diag ard 200 1"
  "mlp-mn-e200 $MLP mn ard 200 1"
  "mlp-mn-group $MLP mn group 100 1"
)
if [ -n "$ONLY" ]; then
  keep=()
  for j in "${jobs_list[@]}"; do
    case ",$ONLY," in *",${j%% *},"*) keep+=("$j") ;; esac
  done
  jobs_list=("${keep[@]}")
fi
run_list one "$RUNS" "$REVERSE" "${jobs_list[@]}"
