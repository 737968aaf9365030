#!/usr/bin/env bash
# Bayesian uses of the Kronecker factors on Fashion-MNIST (docs/kfac.md), MODEL=mlp (default) or
# cnn:
#  1. noisy K-FAC against Adam on the Cholesky factors for the same mn posterior (prior: one
#     learnt variance per layer): per-epoch logs with -ELBO/N, test accuracy, BMA NLL, ECE and
#     sparsity, for equal epochs and equal seconds;
#  2. K-FAC Laplace of a point network (Adam) against the point network and an mn variational
#     network: test NLL and ECE, and the mean predictive entropy on the test images, inverted
#     and rotated by 90 degrees (out of distribution).
# Logs and checkpoints in bench/results/kfac/; tables on stdout.
# usage: [MODEL=mlp|cnn] [EPOCHS=10] [CORE=SkylakeX] bash bench/kfac_bayes.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${DATA:-/usr/share/datasets/fashion-mnist}
MODEL=${MODEL:-mlp}
EPOCHS=${EPOCHS:-10}
OUT=bench/results/kfac
mkdir -p "$OUT"
unset OPENBLAS_CORETYPE
[ -n "${CORE:-}" ] && export OPENBLAS_CORETYPE=$CORE
ARCH=784-300-300-300-10
[ "$MODEL" = cnn ] && ARCH=1-10-mp-20-mp-40-mp-80-mp-flatten-10
COMMON=(--data "$D" --arch "$ARCH" --epochs "$EPOCHS" --batch 100 --seed 1 --threads 1 --progress none)
train() { # NAME FLAGS...
  local name=$1
  shift
  [ -f "$OUT/$MODEL-$name.st" ] && return 0
  "$K" train "${COMMON[@]}" "$@" --log "$OUT/$MODEL-$name.csv" --save "$OUT/$MODEL-$name.st" \
    >"$OUT/$MODEL-$name.out" 2>&1
}
# 1. noisy K-FAC vs Adam, same posterior family and prior (run side by side, one thread each;
#    NOISY=0 skips it)
if [ "${NOISY:-1}" = 1 ]; then
  train mn-adam --family mn --prior scalar --optimizer adam --lr 1e-3 --samples 10 --eval-every 1 &
  train mn-noisykfac --family mn --prior scalar --optimizer noisy-kfac --lr 1e-2 --samples 10 \
    --eval-every 1 &
  wait
fi
# 2. point network, its Laplace posterior, an mn variational network (ARD prior), one held-out split
train point --family point --optimizer adam --lr 1e-3 --val 5000 --samples 0 &
train mn-ard --family mn --prior ard --optimizer adam --lr 1e-3 --val 5000 --samples 10 &
wait
[ -f "$OUT/$MODEL-laplace.st" ] ||
  "$K" laplace "$OUT/$MODEL-point.st" --data "$D" --out "$OUT/$MODEL-laplace.st" --samples 10 \
    --threads 2 >"$OUT/$MODEL-laplace.out" 2>&1
for m in point laplace mn-ard; do
  s=10
  [ $m = point ] && s=1 # a point net: its one "sample" is the point prediction
  for tr in none invert rot90; do
    f="$OUT/$MODEL-eval-$m-$tr.json"
    args=()
    [ $tr != none ] && args=(--transform $tr)
    [ -f "$f" ] || "$K" eval "$OUT/$MODEL-$m.st" --data "$D" --samples $s --threads 2 --json \
      "${args[@]}" >"$f"
  done
done
python3 - "$OUT" "$MODEL" <<'PY'
import csv, json, sys
out, model = sys.argv[1], sys.argv[2]
import os
names = [n for n in ("mn-adam", "mn-noisykfac") if os.path.exists(f"{out}/{model}-{n}.csv")]
if names:
    print(f"## {model}: noisy K-FAC vs Adam on the Cholesky factors (mn, scalar prior)")
    print("| optimizer | epoch | seconds (cumulative) | -ELBO/N | test acc | BMA NLL | ECE | pruned |")
    print("|---|---|---|---|---|---|---|---|")
for name in names:
    t = 0
    for r in csv.DictReader(open(f"{out}/{model}-{name}.csv")):
        t += float(r["seconds"])
        print(f"| {name[3:]} | {r['epoch']} | {t:.0f} | {float(r['train_loss']):.4f} | "
              f"{float(r['test_acc_mean']):.4f} | {float(r['test_nll_bma']):.4f} | "
              f"{float(r['test_ece']):.4f} | {float(r['sparsity']):.3f} |")
print(f"\n## {model}: K-FAC Laplace vs point vs mn (ARD), test set and out of distribution")
print("| model | accuracy | NLL | ECE | entropy (test) | entropy (inverted) | entropy (rot90) |")
print("|---|---|---|---|---|---|---|")
for m in ("point", "laplace", "mn-ard"):
    e = {tr: json.load(open(f"{out}/{model}-eval-{m}-{tr}.json")) for tr in ("none", "invert", "rot90")}
    bma = e["none"]["nll_bma"] is not None
    k = lambda d, a, b: d[a] if bma else d[b]
    print(f"| {m} | {k(e['none'], 'accuracy_bma', 'accuracy'):.4f} | {k(e['none'], 'nll_bma', 'nll'):.4f} | "
          f"{e['none']['ece'] if bma else float('nan'):.4f} | "
          + " | ".join(f"{k(e[tr], 'entropy_bma', 'entropy'):.4f}" for tr in ("none", "invert", "rot90")) + " |")
PY
