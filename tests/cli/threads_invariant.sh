#!/usr/bin/env bash
# The thread-count governor may run any step on fewer threads than --threads; kronvi splits its
# work by --threads and the shapes only, so this must not change a single bit. Each run here
# switches between 2 threads and 1 on alternate steps (KRONVI_THREADS_ALTERNATE) and must give
# the same tensors (parameters and optimizer state) as a run fixed at 2 threads: MLP mn, diag
# and mn-diag, a CNN with mn, and K-FAC.
# usage: threads_invariant.sh KRONVI TMPDIR
set -u
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D"; exit 1; }
pass=0
fail=0

same_tensors() { python3 "$(dirname "$0")/same_tensors.py" "$1" "$2"; }

# check NAME FLAGS: fixed 2 threads vs alternating 2 / 1
check() {
  local name=$1 flags=$2
  if ! "$K" train $flags --threads 2 --fixed-threads --save "$T/$name-fixed.st" --progress none \
      >"$T/$name-fixed.out" 2>&1 ||
    ! KRONVI_THREADS_ALTERNATE=1 "$K" train $flags --threads 2 --save "$T/$name-alt.st" \
      --progress none >"$T/$name-alt.out" 2>&1; then
    fail=$((fail + 1))
    echo "FAIL: $name: a command failed"
    tail -5 "$T/$name-fixed.out" "$T/$name-alt.out"
    return
  fi
  if ! grep -q "steps ran on fewer than 2 threads" "$T/$name-alt.out"; then
    fail=$((fail + 1))
    echo "FAIL: $name: the alternating run did not switch threads"
  elif same_tensors "$T/$name-fixed.st" "$T/$name-alt.st"; then
    pass=$((pass + 1))
    echo "ok: $name: same tensors with 2 and alternating 2/1 threads"
  else
    fail=$((fail + 1))
    echo "FAIL: $name"
  fi
}

MLP="--data $D --arch 784-64-64-10 --limit-train 1000 --limit-test 200 --batch 100 --samples 2 --epochs 2"
check mlp-mn "$MLP --family mn"
check mlp-diag "$MLP --family diag"
check mlp-mndiag "$MLP --family mn-diag"
check mlp-kfac "$MLP --family point --optimizer kfac --inverse-every 3"
check cnn-mn "--data $D --arch 1-8-mp-16-mp-flatten-10 --limit-train 400 --limit-test 100 --batch 50 \
  --samples 1 --epochs 1 --family mn"
echo "threads_invariant: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
