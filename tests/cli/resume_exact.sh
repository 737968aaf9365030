#!/usr/bin/env bash
# Resuming through the command line is exact: `train --epochs 4` and `train --epochs 2` then
# `--resume --epochs 4` give byte-identical tensors (parameters and optimizer state), for a plain
# run, for a run with --val --normalize --hflip --prior group --finetune-pruned whose resume
# command omits every setting (--seed included), for a padded CNN, and for a regression run with
# --standardize --learn-noise; after `kill -9` in the middle of an epoch the last checkpoint
# resumes to the same result. A resumed run refuses flags that contradict its checkpoint, a
# checkpoint without optimizer state needs --reset-optimizer, and eval of a regression model
# applies the stored standardization.
# usage: resume_exact.sh KRONVI TMPDIR
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

# exact NAME "TRAIN FLAGS" "RESUME FLAGS" [stop]: 4 epochs vs 2 + resume to 4. With "stop" the
# first part is the first half of the 4-epoch schedule (--epochs 4 --stop-after 2), as settings
# relative to --epochs (--finetune-pruned, --lr-final) need.
exact() {
  local name=$1 flags=$2 rflags=$3 part="--epochs 2" more="--epochs 4"
  [ "${4:-}" = stop ] && part="--epochs 4 --stop-after 2" && more=""
  "$K" train $flags --epochs 4 --save "$T/$name-a.st" --progress none >"$T/$name-a.out" 2>&1 &&
    "$K" train $flags $part --save "$T/$name-b.st" --progress none >/dev/null 2>&1 &&
    "$K" train $rflags --resume "$T/$name-b.st" $more --progress none >"$T/$name-r.out" 2>&1 ||
    { bad "$name: a command failed"; cat "$T/$name-a.out" "$T/$name-r.out" 2>/dev/null | tail -5; return; }
  if same_tensors "$T/$name-a.st" "$T/$name-b.st"; then ok "$name resumes exactly"; else bad "$name"; fi
}

MLP="--data $D --arch 784-30-10 --limit-train 600 --limit-test 200 --batch 50 --samples 2 --threads 2"
exact plain "$MLP --family mn" "$MLP --family mn"
exact all "$MLP --family mn --val 100 --normalize --hflip --prior group --seed 5" "--data $D"
exact finetune "$MLP --family mn --val 100 --normalize --prior group --finetune-pruned 3 --seed 5 \
  --lr-final 1e-4 --prune-threshold 0" "--data $D" stop
exact diag-seed "$MLP --family diag --seed 9 --kl-warmup 2" "--data $D --fixed-threads"
# the K-FAC family on a small CNN (small factors keep the sanitizer build fast)
SMALL="--data $D --arch 1-4-mp-flatten-10 --limit-train 300 --limit-test 100 --batch 50 --samples 1"
exact kfac "$SMALL --family point --optimizer kfac --inverse-every 2 --adapt-damping 3" "--data $D"
exact ekfac "$SMALL --family point --optimizer kfac --ekfac --fisher empirical" "--data $D"
exact noisy-kfac "$SMALL --family mn --prior fixed:0.1 --optimizer noisy-kfac --inverse-every 2" \
  "--data $D"
CNN="--data $D --arch 1-4-mp-8-mp-flatten-10 --limit-train 300 --limit-test 100 --batch 50 --samples 1"
exact cnn-pad "$CNN --family mn --pad 2 --hflip --normalize" "--data $D"

# regression: --standardize --learn-noise --val, and eval applies the stored standardization
python3 - "$T" <<'PY'
import random, sys
random.seed(4)
for name, n in (("train", 300), ("test", 100)):
    with open(f"{sys.argv[1]}/{name}.csv", "w") as f:
        for _ in range(n):
            x = [random.gauss(0, 3) + 10 * j for j in range(3)]
            f.write(",".join(f"{v:.6f}" for v in x + [0.5 * x[0] - 0.2 * x[2] + random.gauss(0, 0.1)]) + "\n")
PY
REG="--task regression --data $T/train.csv --test $T/test.csv --arch 3-16-1 --family diag --batch 30"
exact regression "$REG --standardize --learn-noise --val 50" "--task regression --data $T/train.csv --test $T/test.csv"
train_rmse=$(grep -o "RMSE [0-9.]*" "$T/regression-a.out" | awk '{print $2}')
eval_rmse=$("$K" eval "$T/regression-a.st" --data "$T/test.csv" | grep -o "RMSE [0-9.]*" | awk '{print $2}')
if [ -n "$train_rmse" ] && [ "$train_rmse" = "$eval_rmse" ]; then
  ok "eval applies the stored standardization (test RMSE $eval_rmse)"
else
  bad "eval RMSE '$eval_rmse' != training's test RMSE '$train_rmse'"
fi

# kill -9 in the middle of an epoch: the last checkpoint resumes to the uninterrupted result
KF="--data $D --arch 784-100-10 --family mn --limit-train 4000 --limit-test 100 --batch 50 --samples 1 --eval-every 0 --threads 2"
"$K" train $KF --epochs 4 --save "$T/k-a.st" --progress none >/dev/null 2>&1
"$K" train $KF --epochs 4 --save "$T/k-b.st" --progress none >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 3000); do [ -f "$T/k-b.st" ] && break; sleep 0.02; done
sleep 0.05 # the checkpoint of epoch 1 is renamed into place: epoch 2 is running
if kill -0 $pid 2>/dev/null; then
  kill -9 $pid
  wait $pid 2>/dev/null
  epoch=$(python3 -c "import json,struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; print(json.loads(json.loads(b[8:8+n])['__metadata__']['kronvi'])['state']['epoch'])" "$T/k-b.st")
  ls "$T"/k-b.st.tmp* >/dev/null 2>&1 && echo "(a partial temporary file was left; the checkpoint itself is intact)"
  if "$K" train --data "$D" --resume "$T/k-b.st" --progress none >/dev/null 2>&1 &&
    same_tensors "$T/k-a.st" "$T/k-b.st"; then
    ok "killed after epoch $epoch, resumed exactly"
  else
    bad "resume after kill -9"
  fi
else
  bad "the run finished before it could be killed (machine too fast for this test's sizes)"
fi

# refusals: flags that contradict the checkpoint, and no optimizer state
refuse() {
  local what=$1 pattern=$2
  shift 2
  if "$@" >"$T/out" 2>&1; then bad "$what: accepted"; return; fi
  if grep -q -- "$pattern" "$T/out"; then ok "$what refused"; else bad "$what: message"; cat "$T/out"; fi
}
refuse "--arch 784-50-10 on a 784-30-10 checkpoint" "trained with --arch 784-30-10, but this command gives --arch 784-50-10" \
  "$K" train --data "$D" --resume "$T/plain-a.st" --arch 784-50-10 --epochs 5
refuse "--family diag on an mn checkpoint" "trained with --family mn, but this command gives --family diag" \
  "$K" train --data "$D" --resume "$T/plain-a.st" --family diag --epochs 5
refuse "--seed 6 on a seed-5 checkpoint" "--seed 5, but this command gives --seed 6" \
  "$K" train --data "$D" --resume "$T/all-a.st" --seed 6 --epochs 5
refuse "--limit-train 500 on a 600-row run" "--limit-train 600" \
  "$K" train --data "$D" --resume "$T/plain-a.st" --limit-train 500 --epochs 5
cp "$T/plain-a.st" "$T/same.st"
if "$K" train $MLP --family mn --resume "$T/same.st" --epochs 5 --progress none >/dev/null 2>&1; then
  ok "repeating the checkpoint's own flags is accepted"
else
  bad "repeating the checkpoint's own flags"
fi
"$K" prune "$T/plain-a.st" --structured --out "$T/small.st" >/dev/null 2>&1 || bad "prune --structured"
refuse "resume without optimizer state" "no optimizer state" \
  "$K" train --data "$D" --resume "$T/small.st" --epochs 5 --save "$T/small2.st"
if "$K" train --data "$D" --resume "$T/small.st" --epochs 5 --save "$T/small2.st" --reset-optimizer \
  --progress none >/dev/null 2>&1; then
  ok "--reset-optimizer resumes a checkpoint without optimizer state"
else
  bad "--reset-optimizer"
fi

echo "resume_exact: $pass passed, $fail failed"
[ $fail -eq 0 ]
