#!/usr/bin/env bash
# The solvers against gradient descent and Adam on Rosenbrock-200 and the quadratic-200
# (condition number 1e4): iterations, values, gradients, curvature products and seconds until
# f - f* < 1e-6 (docs/curv.md, "Test problems"). Writes bench/results/curv/optimize.md and the
# raw summary lines next to it.
# usage: bash bench/curv_optimize.sh [--build DIR]
set -euo pipefail
BUILD=build
if [ "${1:-}" = "--build" ]; then BUILD=$2; fi
KRONVI=$BUILD/kronvi
OUT=bench/results/curv
mkdir -p "$OUT"
raw=$OUT/optimize_raw.txt
: > "$raw"
for problem in rosenbrock quadratic; do
  for method in gd adam lbfgs newton lm hf; do
    maxit=20000
    case $method in gd | adam) maxit=200000 ;; esac
    line=$("$KRONVI" optimize --problem "$problem" --dim 200 --method "$method" --quiet \
      --max-iter "$maxit" --threads 1 || true)
    echo "$line" | tee -a "$raw"
  done
done
{
  echo "| problem | method | reached f - f* < 1e-6 | iterations | values | gradients | curvature products | seconds |"
  echo "|---|---|---|---|---|---|---|---|"
  sed -E 's/^([a-z]+-[0-9]+) ([a-z]+): (reached|NOT reached) after ([0-9]+) iterations, f - f\* = ([^,]+), values ([0-9]+), gradients ([0-9]+), curvature products ([0-9]+), ([0-9.]+) s$/| \1 | \2 | \3 (f - f* = \5) | \4 | \6 | \7 | \8 | \9 |/' "$raw"
} > "$OUT/optimize.md"
cat "$OUT/optimize.md"
