#!/usr/bin/env bash
# The VAE through the command line on a small part of Fashion-MNIST: `vae binarize` writes IDX
# files of 0/255 pixels, the same bits for the same seed; for each latent family (diag, mn 2x2,
# mv) `vae train --epochs 2` and `--epochs 2 --stop-after 1` + `--resume` give byte-identical
# tensors (parameters, best parameters, Adam state); the CSV log has a row per epoch; `vae eval`
# prints finite numbers with LL >= ELBO, the same twice, and per-image rows; `vae sample` and
# `vae reconstruct` write PNG grids of the expected size that a reader decodes; `report --png`
# draws a classifier's pruning masks.
# usage: vae_roundtrip.sh KRONVI TMPDIR
set -u
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
HERE=$(dirname "$0")
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D"; exit 1; }
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

# binarization: deterministic, 0/255 pixels, labels kept
"$K" vae binarize --data "$D" --out "$T/bin" --limit-train 600 --limit-test 100 >"$T/bin.out" 2>&1 &&
  "$K" vae binarize --data "$D" --out "$T/bin2" --limit-train 600 --limit-test 100 >/dev/null 2>&1 ||
  { bad "binarize failed"; cat "$T/bin.out"; exit 1; }
same=1
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  cmp -s "$T/bin/$f" "$T/bin2/$f" || same=0
done
[ $same = 1 ] && ok "binarize writes the same bits twice" || bad "binarize is not deterministic"
if python3 - "$T/bin" "$D" <<'PY'; then ok "binarized files: 0/255 pixels, labels copied, about the mean intensity on"; else bad "binarized files"; fi
import gzip, struct, sys
b, d = sys.argv[1], sys.argv[2]
img = gzip.open(b + "/train-images-idx3-ubyte.gz").read()
magic, n, r, c = struct.unpack(">IIII", img[:16])
px = img[16:]
assert magic == 0x803 and (n, r, c) == (600, 28, 28) and len(px) == n * r * c, (magic, n, r, c)
assert set(px) <= {0, 255}
orig = gzip.open(d + "/train-images-idx3-ubyte.gz").read()[16:16 + n * r * c]
on, mean = sum(1 for v in px if v) / len(px), sum(orig) / 255 / len(px)
assert abs(on - mean) < 0.01, (on, mean)
lab = gzip.open(b + "/train-labels-idx1-ubyte.gz").read()
assert lab[8:] == gzip.open(d + "/train-labels-idx1-ubyte.gz").read()[8:8 + n]
PY

# exact resume for each family
SMALL="--data $T/bin --hidden 32 --layers 2 --latent 4 --batch 50 --val 100 --kl-anneal-epochs 2 --patience 5 --threads 2 --progress none"
exact() {
  local name=$1 flags=$2
  "$K" vae train $SMALL $flags --epochs 2 --save "$T/$name-a.st" --log "$T/$name-a.csv" >"$T/$name-a.out" 2>&1 &&
    "$K" vae train $SMALL $flags --epochs 2 --stop-after 1 --save "$T/$name-b.st" >/dev/null 2>&1 &&
    "$K" vae train --data "$T/bin" --resume "$T/$name-b.st" --progress none >"$T/$name-r.out" 2>&1 ||
    { bad "$name: a command failed"; cat "$T/$name-a.out" "$T/$name-r.out" 2>/dev/null | tail -5; return; }
  if python3 "$HERE/same_tensors.py" "$T/$name-a.st" "$T/$name-b.st"; then
    ok "$name resumes exactly"
  else
    bad "$name does not resume exactly"
  fi
}
exact diag "--family diag"
exact mn "--family mn --mn-shape 2x2"
exact mv "--family mv"
if [ "$(wc -l <"$T/mn-a.csv")" = 3 ] && head -1 "$T/mn-a.csv" | grep -q "^epoch,step,seconds,kl_beta,train_elbo,train_rec,train_kl,val_elbo,best_epoch$"; then
  ok "CSV log: header and one row per epoch"
else
  bad "CSV log"; cat "$T/mn-a.csv"
fi
grep -q "best.enc.fc0.M" "$T/mn-a.st" && ok "the checkpoint holds the best parameters" || bad "no best parameters"

# eval: finite, LL >= ELBO - noise, deterministic, per-image rows
E="$K vae eval $T/mn-a.st --data $T/bin --k 20 --limit-test 50 --threads 2 --progress none"
$E --json >"$T/e1.json" 2>"$T/e.err" && $E --json >"$T/e2.json" 2>>"$T/e.err" &&
  $E --per-image "$T/per.csv" >"$T/e.txt" 2>>"$T/e.err" || { bad "vae eval failed"; cat "$T/e.err"; }
cmp -s "$T/e1.json" "$T/e2.json" && ok "vae eval is deterministic" || bad "vae eval differs between runs"
if python3 - "$T/e1.json" "$T/per.csv" <<'PY'; then ok "vae eval: finite ELBO and LL, LL >= ELBO, 50 per-image rows"; else bad "vae eval numbers"; cat "$T/e1.json"; fi
import json, math, sys
e = json.load(open(sys.argv[1]))
assert e["images"] == 50 and e["k"] == 20 and e["family"] == "mn" and (e["p"], e["q"]) == (2, 2)
for k in ("elbo", "ll", "elbo_se", "ll_se", "gap", "gap_se"):
    assert math.isfinite(e[k]), k
assert -800 < e["elbo"] < 0 and e["ll"] >= e["elbo"] and e["gap"] > 0
rows = open(sys.argv[2]).read().split()
assert rows[0] == "image,elbo,ll" and len(rows) == 51
assert abs(sum(float(r.split(",")[2]) for r in rows[1:]) / 50 - e["ll"]) < 1e-3
PY
grep -q "log-likelihood" "$T/e.txt" && grep -q "standard error" "$T/e.txt" && ok "vae eval text output" || bad "vae eval text"

# pictures
"$K" vae sample "$T/mn-a.st" --out "$T/s.png" --n 12 --cols 4 --scale 1 >/dev/null 2>&1 || bad "vae sample failed"
"$K" vae reconstruct "$T/mn-a.st" --data "$T/bin" --out "$T/r.png" --n 10 --cols 5 >/dev/null 2>&1 || bad "vae reconstruct failed"
s=$(python3 "$HERE/png_info.py" "$T/s.png" 2>&1)
[ "$s" != "${s#122 92 1 }" ] && ok "vae sample: a 4 x 3 grid of 28 x 28 gray images ($s)" || bad "sample PNG: $s"
r=$(python3 "$HERE/png_info.py" "$T/r.png" 2>&1)
[ "$r" = "292 234 1 0 255" ] && ok "vae reconstruct: 2 pairs of rows of 5, scale 2 ($r)" || bad "reconstruct PNG: $r"
"$K" train --data "$D" --arch 784-20-10 --epochs 1 --limit-train 300 --limit-test 50 --batch 50 \
  --samples 1 --save "$T/cls.st" --progress none >/dev/null 2>&1 || bad "classifier training failed"
mkdir -p "$T/masks"
"$K" report "$T/cls.st" --png "$T/masks/" --threshold 0 >"$T/rep.out" 2>&1 || { bad "report --png failed"; cat "$T/rep.out"; }
m0=$(python3 "$HERE/png_info.py" "$T/masks/fc0.png" 2>&1)
m1=$(python3 "$HERE/png_info.py" "$T/masks/fc1.png" 2>&1)
[ "${m0% * *}" = "140 784 3" ] && [ "${m1% * *}" = "130 140 3" ] && ok "report --png: fc0 784 x 20, fc1 20 x 10 masks ($m0; $m1)" || bad "mask PNGs: $m0; $m1"

echo "vae_roundtrip: $pass passed, $fail failed"
[ $fail -eq 0 ]
