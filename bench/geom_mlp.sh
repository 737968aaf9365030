#!/usr/bin/env bash
# Riemannian vs Euclidean optimization of the MN posterior of the Fashion-MNIST MLP
# 784-300-300-300-10 (ARD prior): adam (Euclidean Adam on the Cholesky storage) against
# riemann-sgd, riemann-momentum and riemann-adam, the same epochs, seed and threads. Per-epoch
# CSV logs go to bench/results/geom/, then bench/geom_table.py prints the table (the negative
# ELBO per example per epoch and step, seconds, test accuracy, accuracy after pruning, sparsity).
# usage: [EPOCHS=3] [THREADS=2] bash bench/geom_mlp.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-2}
OUT=bench/results/geom
mkdir -p "$OUT"
for opt in adam riemann-sgd riemann-momentum riemann-adam; do
  log="$OUT/mlp-mn-$opt.csv"
  rm -f "$log"
  "$K" train --data "$D" --arch 784-300-300-300-10 --family mn --prior ard --epochs "$EPOCHS" \
    --batch 100 --optimizer "$opt" --lr 1e-3 --momentum 0.5 --seed 1 --threads "$THREADS" \
    --eval-every 0 --progress none --log "$log" >"$OUT/mlp-mn-$opt.out" 2>&1
  echo "$opt: $(tail -1 "$log" | cut -d, -f1,2,3,6,11,13,16,17)"
done
python3 bench/geom_table.py "$OUT" mlp-mn
