#!/usr/bin/env bash
# The runs behind the README's Figures 2 and 3 (paper §5.1): the MLP 784-300-300-300-10 for 40
# epochs and the CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 for 20 epochs on the whole
# Fashion-MNIST training set, DIAG, MN and MN+DIAG, ARD prior, Adam lr 1e-3, batch 100,
# exponential KL annealing over 5 epochs, seed 1, one thread each; then bench/figures.py.
# Each run checkpoints every epoch and resumes where it stopped: run the script again to
# continue. Logs: OUT/{mlp,cnn}-{diag,mn,mn-diag}.csv (default OUT=runs/figures).
#   bash bench/figures_runs.sh        (KRONVI=build/kronvi OUT=runs/figures)
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${FASHION:-/usr/share/datasets/fashion-mnist}
O=${OUT:-runs/figures}
mkdir -p "$O"
run() { # name arch family epochs
  local n=$1 a=$2 f=$3 e=$4 res=()
  [ -f "$O/$n.done" ] && return
  [ -f "$O/$n.st" ] && res=(--resume "$O/$n.st")
  "$K" train --data "$D" --arch "$a" --family "$f" --prior ard --epochs "$e" --batch 100 \
    --lr 1e-3 --kl-warmup 5 --kl-schedule exp --seed 1 --threads 1 --fixed-threads \
    --progress lines --save "$O/$n.st" --log "$O/$n.csv" "${res[@]}" >>"$O/$n.out" 2>&1
  touch "$O/$n.done"
}
for f in diag mn mn-diag; do run "mlp-$f" 784-300-300-300-10 "$f" 40; done
for f in diag mn mn-diag; do run "cnn-$f" 1-10-mp-20-mp-40-mp-80-mp-flatten-10 "$f" 20; done
P=/usr/bin/python3
$P bench/figures.py --figure 2 --out docs/img/fig2-mlp-fashion.png \
  --title "Figure 2: sparse MLP 784-300-300-300-10 on Fashion-MNIST (60,000 images, 40 epochs, ARD)" \
  DIAG="$O/mlp-diag.csv" MN="$O/mlp-mn.csv" MN+DIAG="$O/mlp-mn-diag.csv"
$P bench/figures.py --figure 3 --out docs/img/fig3-cnn-fashion.png \
  --title "Figure 3: sparse CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 on Fashion-MNIST (60,000 images, 20 epochs, ARD)" \
  DIAG="$O/cnn-diag.csv" MN="$O/cnn-mn.csv" MN+DIAG="$O/cnn-mn-diag.csv"
"$K" report "$O/mlp-mn.st" --png docs/img/mask-mlp-mn-
