#!/usr/bin/env bash
# Resuming the Riemannian optimizers and lie-ngd is exact: `train --epochs 4` and `train --epochs
# 2` then `--resume --epochs 4` give byte-identical tensors, the optimizers' state included (the
# whitened momentum, the per-factor second moments riemann.v.*, the triangular factors lie.K.*,
# lie.C.*), with a resume command that omits every setting.
# usage: resume_geom.sh KRONVI TMPDIR
set -u
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D"; exit 1; }
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
same_tensors() { python3 "$(dirname "$0")/same_tensors.py" "$1" "$2"; }

# exact NAME "TRAIN FLAGS": 4 epochs vs 2 + resume to 4
exact() {
  local name=$1 flags=$2
  "$K" train $flags --epochs 4 --save "$T/$name-a.st" --progress none >"$T/$name-a.out" 2>&1 &&
    "$K" train $flags --epochs 2 --save "$T/$name-b.st" --progress none >/dev/null 2>&1 &&
    "$K" train --data "$D" --resume "$T/$name-b.st" --epochs 4 --progress none >"$T/$name-r.out" 2>&1 ||
    { bad "$name: a command failed"; cat "$T/$name-a.out" "$T/$name-r.out" 2>/dev/null | tail -5; return; }
  if same_tensors "$T/$name-a.st" "$T/$name-b.st"; then ok "$name resumes exactly"; else bad "$name"; fi
}

# small nets keep the sanitizer build fast: a CNN whose dense layer has 196 inputs
TINY="--data $D --arch 1-4-mp-mp-flatten-10 --limit-train 300 --limit-test 100 --batch 50 --samples 1 --threads 2"
exact riemann-adam "$TINY --family mn --optimizer riemann-adam"
exact riemann-momentum "$TINY --family mn --optimizer riemann-momentum --momentum 0.5 --seed 3"
exact lie-ngd "$TINY --family point --optimizer lie-ngd --inverse-every 2"
echo "resume_geom: $pass passed, $fail failed"
[ $fail -eq 0 ]
