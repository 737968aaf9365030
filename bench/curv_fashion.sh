#!/usr/bin/env bash
# Acceptance run of the solvers on Fashion-MNIST (docs/curv.md, "Training with the solvers"):
# the point MLP 784-300-10 trained by lm, hf, lbfgs and proximal against Adam, the same number
# of data passes (epochs) for all, full batches of 1000 rows, on the first --limit-train rows
# (default 10000; the whole test set). One CSV per optimizer in bench/results/curv/, then the
# tables (bench/curv_fashion_table.py).
# usage: bash bench/curv_fashion.sh [--build DIR] [--data DIR] [--limit N] [--epochs E]
set -euo pipefail
BUILD=build DATA=/usr/share/datasets/fashion-mnist LIMIT=10000 EPOCHS=5
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2 ;;
    --data) DATA=$2 ;;
    --limit) LIMIT=$2 ;;
    --epochs) EPOCHS=$2 ;;
  esac
  shift 2
done
OUT=${OUT:-bench/results/curv}
mkdir -p "$OUT"
common=(--data "$DATA" --arch 784-300-10 --family point --epochs "$EPOCHS" --limit-train "$LIMIT"
  --samples 0 --seed 1 --threads 2 --fixed-threads --progress none)
run() { # name, then flags
  local name=$1
  shift
  echo "== $name: $*"
  "$BUILD/kronvi" train "${common[@]}" "$@" --log "$OUT/fashion_$name.csv" | tail -2
}
run adam-b1000 --optimizer adam --batch 1000 --lr 1e-3
run adam-b100 --optimizer adam --batch 100 --lr 1e-3
run lbfgs --optimizer lbfgs --batch 1000
run lm --optimizer lm --batch 1000 --cg-max 30 --damping 1
run hf --optimizer hf --batch 1000 --cg-max 30 --damping 1
run proximal --optimizer proximal --batch 1000 --lr 1e-3 --prox-steps 10
/usr/bin/python3 bench/curv_fashion_table.py "$OUT" > "$OUT/fashion.md"
cat "$OUT/fashion.md"
