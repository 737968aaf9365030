#!/usr/bin/env bash
# A short real-data run of the command line on Fashion-MNIST (3000 training images, one epoch)
# and the commands that read its checkpoint: accuracy must be far above chance (10%), a resumed
# run must continue from the saved epoch, and inspect/report/prune/eval must work. The test BMA
# runs when the schedule says (the log), and the summary is the last epoch's evaluation.
# usage: train_fashion.sh KRONVI TMPDIR
set -eu
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D (apt-get install dataset-fashion-mnist)"; exit 1; }
"$K" train --data "$D" --arch 784-100-10 --family mn --prior ard --epochs 1 --batch 50 --kl-warmup 2 \
  --limit-train 3000 --limit-test 1000 --samples 3 --threads 2 --progress lines \
  --save "$T/m.safetensors" --log "$T/m.csv" | tee "$T/train.out"
acc=$(awk -F, 'NR==2 {print $11}' "$T/m.csv")
echo "test accuracy after one epoch on 3000 images: $acc"
awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }'
"$K" train --data "$D" --resume "$T/m.safetensors" --epochs 2 --limit-train 3000 --limit-test 1000 \
  --progress lines --log "$T/m.csv" 2>&1 | tee "$T/resume.out"
grep -q "resuming .* at epoch 1" "$T/resume.out"
[ "$(wc -l <"$T/m.csv")" -eq 3 ]
"$K" eval "$T/m.safetensors" --data "$D" --limit-test 500 --samples 2 --json | tee "$T/eval.json"
python3 -c "import json,sys; d=json.load(open('$T/eval.json')); assert d['rows']==500 and d['accuracy']>0.6, d"
"$K" report "$T/m.safetensors" | grep -q "fc1"
"$K" prune "$T/m.safetensors" --out "$T/p.safetensors" --threshold 3 | grep -q "wrote"
"$K" inspect "$T/m.safetensors" --json >"$T/inspect.json"
python3 - "$T/inspect.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
l0 = d["layers"][0]
assert l0["family"] == "mn" and l0["n"] == 784 and l0["m"] == 100
assert len(l0["M"]) == 784 and len(l0["M"][0]) == 100
assert len(l0["U"]) == 784 and len(l0["V"]) == 100
U = l0["U"]
assert all(abs(U[i][j] - U[j][i]) < 1e-6 * (1 + abs(U[i][j])) for i in range(0, 784, 97) for j in range(0, 784, 89))
print("inspect ok")
PY
# --normalize: the statistics travel with the model, eval applies them (same accuracy as the
# training run printed), a resumed run reuses them, and regression refuses the flag
"$K" train --data "$D" --arch 784-50-10 --family diag --epochs 1 --limit-train 2000 \
  --limit-test 500 --samples 0 --normalize --threads 1 --progress lines \
  --save "$T/n.safetensors" --log "$T/n.csv" 2>&1 | tee "$T/norm.out"
grep -q "inputs normalized with mean 0.28" "$T/norm.out"
nacc=$(awk -F, 'NR==2 {print $11}' "$T/n.csv")
"$K" eval "$T/n.safetensors" --data "$D" --limit-test 500 --samples 0 --json >"$T/neval.json"
python3 -c "import json; d=json.load(open('$T/neval.json')); assert abs(d['accuracy'] - $nacc) < 1e-9, (d, $nacc)"
"$K" train --data "$D" --resume "$T/n.safetensors" --epochs 2 --limit-train 2000 --limit-test 500 \
  --progress lines 2>&1 | tee "$T/nres.out"
grep -q "inputs normalized with mean 0.28" "$T/nres.out"
"$K" inspect "$T/n.safetensors" --json >"$T/ninspect.json"
python3 -c "import json; d=json.load(open('$T/ninspect.json')); m, s = d['input_norm']; assert 0.2 < m < 0.4 and 0.3 < s < 0.4, d['input_norm']"
printf '1,2,3\n4,5,6\n' >"$T/r.csv"
if "$K" train --data "$T/r.csv" --task regression --arch 2-1 --normalize 2>"$T/nerr.txt"; then
  echo "regression with --normalize should fail"; exit 1
fi
grep -q "normalize is for images" "$T/nerr.txt"
# --finetune-pruned: in its epochs the mean network is the pruned one (same test accuracy)
"$K" train --data "$D" --arch 784-50-10 --family mn --epochs 3 --kl-warmup 1 --limit-train 2000 \
  --limit-test 500 --samples 0 --finetune-pruned 2 --threads 1 --progress lines \
  --save "$T/f.safetensors" --log "$T/f.csv" >/dev/null 2>&1
awk -F, 'NR >= 3 { if ($11 != $16 || $17 <= 0) bad = 1; n++ } END { exit !(n == 2 && !bad) }' "$T/f.csv"
"$K" inspect "$T/f.safetensors" >/dev/null
# evaluation schedule: the test BMA after the last epoch only (the log's BMA columns 13-15 are
# empty before), every N epochs with --eval-every N; the summary is the last epoch's evaluation
E="--data $D --arch 784-30-10 --family mn --epochs 3 --limit-train 600 --limit-test 300 --samples 2 --threads 1"
"$K" train $E --progress none --log "$T/e0.csv" >"$T/e0.out" 2>&1
awk -F, 'NR == 2 || NR == 3 { if ($13 != "" || $14 != "" || $15 != "") bad = 1 }
  NR == 4 { if ($13 == "" || $15 == "") bad = 1 } END { exit !(NR == 4 && !bad) }' "$T/e0.csv"
python3 - "$T/e0.csv" "$T/e0.out" <<'PY'
import csv, re, sys
last = list(csv.DictReader(open(sys.argv[1])))[-1]
m = re.search(r"accuracy ([0-9.]+) \(mean weights\), ([0-9.]+) \(BMA, 2 samples\), NLL ([0-9.]+), "
              r"ECE ([0-9.]+), accuracy after pruning ([0-9.]+)", open(sys.argv[2]).read())
assert m, "no summary line"
got = [float(v) for v in m.groups()]
want = [float(last[k]) for k in ("test_acc_mean", "test_acc_bma", "test_nll_bma", "test_ece", "test_acc_pruned")]
assert all(abs(g - w) < 1e-4 for g, w in zip(got, want)), (got, want)
print("the summary is the last epoch's evaluation")
PY
"$K" train $E --eval-every 2 --bma lrt --progress none --log "$T/e2.csv" >/dev/null 2>&1
awk -F, 'NR == 2 { if ($13 != "") bad = 1 } NR >= 3 { if ($13 == "") bad = 1 }
  END { exit !(NR == 4 && !bad) }' "$T/e2.csv"
echo "train_fashion: 1 passed, 0 failed"
