#!/usr/bin/env bash
# kronvi laplace on real data: a point network trained on 3000 Fashion-MNIST images with a held-out
# split becomes an mn posterior (prior precision chosen on that split) that eval, report and
# prune read; its mean network is the point network; an mn checkpoint and missing flags are
# refused with a message.
# usage: laplace.sh KRONVI TMPDIR
set -eu
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
"$K" train --data "$D" --arch 784-64-10 --family point --limit-train 3000 --val 500 --epochs 2 \
  --samples 0 --progress none --save "$T/point.st" >/dev/null
"$K" laplace "$T/point.st" --data "$D" --out "$T/post.st" --samples 3 | tee "$T/laplace.out"
grep -q "wrote .*family mn" "$T/laplace.out"
"$K" eval "$T/point.st" --data "$D" --limit-test 1000 --samples 0 --json >"$T/point.json"
"$K" eval "$T/post.st" --data "$D" --limit-test 1000 --samples 4 --json >"$T/post.json"
python3 - "$T/point.json" "$T/post.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["accuracy"] == b["accuracy"], (a, b)   # the posterior's mean network is the point net
assert b["nll_bma"] is not None and b["nll_bma"] > 0, b
print(f"point accuracy {a['accuracy']:.4f}, NLL {a['nll']:.4f}; Laplace BMA NLL {b['nll_bma']:.4f}, ECE {b['ece']:.4f}")
PY
"$K" report "$T/post.st" | grep -q "family mn"
# out of distribution: inverted images, with the predictive entropy reported
"$K" eval "$T/post.st" --data "$D" --limit-test 500 --samples 3 --transform invert --json |
  python3 -c "import json,sys; d=json.load(sys.stdin); assert d['entropy_bma'] is not None and d['entropy'] >= 0, d"
"$K" train --data "$D" --arch 784-16-10 --family mn --limit-train 500 --epochs 1 --samples 0 \
  --progress none --save "$T/mn.st" >/dev/null
if "$K" laplace "$T/mn.st" --data "$D" --out "$T/x.st" 2>"$T/err"; then exit 1; fi
grep -q "point weights" "$T/err"
if "$K" laplace "$T/point.st" --data "$D" 2>"$T/err"; then exit 1; fi
grep -q "needs MODEL, --data and --out" "$T/err"
echo "laplace: 1 passed, 0 failed"
