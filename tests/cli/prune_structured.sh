#!/usr/bin/env bash
# kronvi prune --structured on a tiny CNN trained for one epoch on 300 Fashion-MNIST images
# (padded to 32x32, group-ARD prior): the compressed model's accuracy must equal the pruned
# model's, the compressed checkpoint must load and evaluate to the same accuracy, a low threshold
# must shrink the network, and bad input must fail with a clear message.
# usage: prune_structured.sh KRONVI TMPDIR
set -eu
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D (apt-get install dataset-fashion-mnist)"; exit 1; }
"$K" train --data "$D" --arch 1-8-mp-16-mp-flatten-10 --family mn --prior group --pad 2 --epochs 1 \
  --batch 50 --limit-train 300 --limit-test 100 --samples 1 --threads 2 --progress none \
  --save "$T/m.safetensors" >/dev/null
# a threshold that removes some filters of conv1 (after one epoch little is pruned at 3)
"$K" prune "$T/m.safetensors" --structured --threshold -5.2 --out "$T/s.safetensors" \
  --data "$D" --limit-test 200 --threads 2 | tee "$T/prune.out"
grep -q "accuracy (mean weights): pruned .* (equal)" "$T/prune.out"
grep -q "max |logit difference|" "$T/prune.out"
grep -q "speed-up x" "$T/prune.out"
acc=$(sed -n 's/.*compressed \([0-9.]*\) (equal).*/\1/p' "$T/prune.out")
"$K" eval "$T/s.safetensors" --data "$D" --limit-test 200 --samples 1 --json >"$T/eval.json"
python3 - "$T/eval.json" "$acc" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rows"] == 200 and abs(d["accuracy"] - float(sys.argv[2])) < 1e-9, (d, sys.argv[2])
print("compressed checkpoint evaluates to the printed accuracy", sys.argv[2])
PY
# a very low threshold prunes almost everything: the network must shrink
"$K" prune "$T/m.safetensors" --structured --threshold -6 --out "$T/s6.safetensors" | tee "$T/p6.out"
python3 - "$T/p6.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
a, b = map(int, re.search(r"weights: (\d+) -> (\d+)", t).groups())
p, q = map(int, re.search(r"variational parameters \(mn\): (\d+) -> (\d+)", t).groups())
assert b < a and q < p, (a, b, p, q)
PY
"$K" report "$T/s6.safetensors" | grep -q "fc0"
# bad input: missing --out, --structured on another command, --data without --structured
fail=0
"$K" prune "$T/m.safetensors" --structured 2>"$T/err" && fail=1
grep -q -- "--out is required" "$T/err" || fail=1
"$K" eval "$T/m.safetensors" --data "$D" --structured 2>"$T/err" && fail=1
grep -q -- "--structured is an option of 'kronvi prune'" "$T/err" || fail=1
"$K" prune "$T/m.safetensors" --out "$T/x.safetensors" --data "$D" 2>"$T/err" && fail=1
grep -q -- "--data needs --structured" "$T/err" || fail=1
[ $fail -eq 0 ] || { echo "bad-input case failed"; cat "$T/err"; exit 1; }
echo "prune_structured: 1 passed, 0 failed"
