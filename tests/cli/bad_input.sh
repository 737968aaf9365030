#!/usr/bin/env bash
# Bad input to the kronvi command line: each case must exit non-zero with one clear "kronvi:"
# message, never crash (exit code >= 128 = signal), and never damage an existing checkpoint.
# usage: bad_input.sh KRONVI TMPDIR
set -u
K=$1
T=$2
rm -rf "$T" && mkdir -p "$T"
fail=0
n=0

# expect CODE_PATTERN MESSAGE_PATTERN -- command...
expect() {
  local want=$1 msg=$2
  shift 3
  n=$((n + 1))
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    echo "FAIL ($rc): $*"; cat "$T/err"; fail=$((fail + 1)); return
  fi
  if ! grep -q -- "$msg" "$T/err"; then
    echo "FAIL (message): $* -> expected /$msg/ in:"; cat "$T/err"; fail=$((fail + 1)); return
  fi
  case $want in any) ;; *) [ $rc -eq "$want" ] || { echo "FAIL (rc $rc != $want): $*"; fail=$((fail + 1)); } ;; esac
}

# a tiny valid IDX data set (4x4 images) and a trained checkpoint
python3 - "$T" <<'PY'
import gzip, struct, sys, os
d = sys.argv[1]
def imgs(path, n, r, c, gz=True):
    data = struct.pack(">IIII", 0x803, n, r, c) + bytes((i * 7) % 256 for i in range(n * r * c))
    (gzip.open if gz else open)(path, "wb").write(data)
def labs(path, n, gz=True):
    data = struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n))
    (gzip.open if gz else open)(path, "wb").write(data)
os.makedirs(d + "/good", exist_ok=True)
imgs(d + "/good/train-images-idx3-ubyte.gz", 60, 4, 4); labs(d + "/good/train-labels-idx1-ubyte.gz", 60)
imgs(d + "/good/t10k-images-idx3-ubyte.gz", 30, 4, 4); labs(d + "/good/t10k-labels-idx1-ubyte.gz", 30)
os.makedirs(d + "/corrupt", exist_ok=True)
open(d + "/corrupt/train-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, 60, 4, 4) + b"\0" * 100)
labs(d + "/corrupt/train-labels-idx1-ubyte.gz", 60)
imgs(d + "/corrupt/t10k-images-idx3-ubyte.gz", 30, 4, 4); labs(d + "/corrupt/t10k-labels-idx1-ubyte.gz", 30)
os.makedirs(d + "/badmagic", exist_ok=True)
open(d + "/badmagic/train-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x1234, 60, 4, 4) + b"\0" * 960)
labs(d + "/badmagic/train-labels-idx1-ubyte.gz", 60)
imgs(d + "/badmagic/t10k-images-idx3-ubyte.gz", 30, 4, 4); labs(d + "/badmagic/t10k-labels-idx1-ubyte.gz", 30)
os.makedirs(d + "/cifar", exist_ok=True)
for name in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
    open(d + "/cifar/" + name, "wb").write(bytes(3073 * 2 + (100 if name.endswith("3.bin") else 0)))
open(d + "/nan.csv", "w").write("a,b,y\n1,2,3\n4,nan,6\n")
open(d + "/ragged.csv", "w").write("1,2,3\n4,5\n")
PY
"$K" train --data "$T/good" --arch 16-8-3 --epochs 1 --batch 10 --samples 2 --progress none \
  --save "$T/model.safetensors" >/dev/null 2>"$T/err" || { echo "setup failed"; cat "$T/err"; exit 1; }
cp "$T/model.safetensors" "$T/model.orig"

expect 2 "unknown command" -- "$K" frobnicate
expect 2 "unrecognized option" -- "$K" train --data "$T/good" --arch 16-3 --no-such-flag
expect 2 "expects an integer" -- "$K" train --data "$T/good" --arch 16-3 --epochs ten
expect 2 "expects an integer" -- "$K" train --data "$T/good" --arch 16-3 --save-every 0
expect 2 "expects a number" -- "$K" train --data "$T/good" --arch 16-3 --lr -1
expect 2 "--data is required" -- "$K" train --arch 16-3
expect 2 "--arch is required" -- "$K" train --data "$T/good"
expect 2 "unknown family" -- "$K" train --data "$T/good" --arch 16-3 --family gaussian
expect 2 "unknown prior" -- "$K" train --data "$T/good" --arch 16-3 --prior laplace
expect 1 "No such file" -- "$K" train --data "$T/missing" --arch 16-3
expect 1 "cannot load data" -- "$K" train --data "$T/corrupt" --arch 16-3
expect 1 "magic" -- "$K" train --data "$T/badmagic" --arch 16-3
expect 1 "16 features" -- "$K" train --data "$T/good" --arch 784-300-10 --progress none
expect 1 "architecture" -- "$K" train --data "$T/good" --arch 16-x-3
expect 1 "outputs" -- "$K" train --data "$T/good" --arch 16-2 --progress none
expect 2 "invert or rot90" -- "$K" eval "$T/model.safetensors" --data "$T/good" --transform blur
expect 2 "option of 'kronvi eval'" -- "$K" prune "$T/model.safetensors" --out "$T/p2.safetensors" --transform invert
# a legal but huge network is refused with its memory estimate before anything is allocated
expect 1 "needs about .* GB .* available" -- "$K" train --data "$T/good" --arch 16-1000000-10000 --family diag --progress none
expect 1 "needs about .* MB .* but only 1.0 MB" -- "$K" train --data "$T/good" --arch 16-300-3 --max-memory 1M --progress none
expect 2 "expects a positive size" -- "$K" train --data "$T/good" --arch 16-3 --max-memory lots
# convolutional specs that do not fit 4x4x1 images, and a corrupt CIFAR-10 batch
expect 1 "needs h, w >= 2\|pool" -- "$K" train --data "$T/good" --arch 1-4-mp-4-mp-4-mp-flatten-3 --progress none
expect 1 "kernel 5x5 does not fit" -- "$K" train --data "$T/good" --arch 1-4k5p0-flatten-3 --progress none
expect 1 "with 3 channels" -- "$K" train --data "$T/good" --arch 3-4-mp-flatten-3 --progress none
expect 1 "needs 'flatten'" -- "$K" train --data "$T/good" --arch 1-4-mp-3 --progress none
expect 1 "unknown layer" -- "$K" train --data "$T/good" --arch 1-4-pool-flatten-3 --progress none
expect 1 "unknown option" -- "$K" train --data "$T/good" --arch 1-4x3-flatten-3 --progress none
expect 1 "3073" -- "$K" train --data "$T/cifar" --arch 3-4-mp-flatten-10 --progress none
expect 1 "nan" -- "$K" train --task regression --data "$T/nan.csv" --targets 1 --arch 2-1
expect 1 "line 2" -- "$K" train --task regression --data "$T/ragged.csv" --targets 1 --arch 2-1

# checkpoints: truncated, foreign, missing
head -c 100 "$T/model.safetensors" >"$T/trunc.safetensors"
expect 1 "cannot load model" -- "$K" eval "$T/trunc.safetensors" --data "$T/good"
head -c 4000 /dev/urandom >"$T/foreign.safetensors" 2>/dev/null || dd if=/dev/urandom of="$T/foreign.safetensors" bs=1000 count=4 2>/dev/null
expect 1 "cannot load model" -- "$K" report "$T/foreign.safetensors"
cp "$T/good/train-images-idx3-ubyte.gz" "$T/gz.safetensors"
expect 1 "cannot load model" -- "$K" inspect "$T/gz.safetensors"
expect 1 "cannot load model" -- "$K" report "$T/nothere.safetensors"
expect 2 "exactly one MODEL" -- "$K" report
expect 2 "--out is required" -- "$K" prune "$T/model.safetensors"
# an output that cannot be written (directory missing) is refused before anything is written
expect 1 "--out .*directory does not exist" -- "$K" prune "$T/model.safetensors" --out "$T/nodir/x.safetensors"
# output paths of train are checked before the data are loaded and before any training: a
# missing directory, a directory part that is a regular file (the tests may run as root, which
# ignores permission bits), a path longer than PATH_MAX and a file name longer than NAME_MAX.
# The message names the flag (a failed save after an epoch names the library's error instead);
# a run that got past the check into its 100000 epochs ends in the timeout
touch "$T/afile"
long="$T/$(printf '%04096d' 0)/x.safetensors"
longname="$T/$(printf '%0300d' 0).safetensors"
quick=(timeout 60 "$K" train --data "$T/good" --arch 16-3 --epochs 100000 --progress none)
expect 1 "--save .*directory does not exist" -- "${quick[@]}" --save "$T/nodir/x.safetensors"
expect 1 "--save .*not a directory" -- "${quick[@]}" --save "$T/afile/x.safetensors"
expect 1 "--save .*path too long" -- "${quick[@]}" --save "$long"
expect 1 "--save .*file name too long" -- "${quick[@]}" --save "$longname"
expect 1 "--save .*is a directory" -- "${quick[@]}" --save "$T/good"
expect 1 "--log .*path too long" -- "${quick[@]}" --log "$long"
expect 1 "--log .*not a directory" -- "$K" train --data "$T/missing" --arch 16-3 --log "$T/afile/log.csv"
expect 1 "--resume .*not a directory" -- "${quick[@]}" --resume "$T/afile/x.safetensors"
# --samples 0 computes no Bayesian model average: the text says so, the JSON has null, and the
# mean-weight and pruned accuracies are still printed
n=$((n + 1))
"$K" eval "$T/model.safetensors" --data "$T/good" --samples 0 >"$T/s0.txt" 2>"$T/err" &&
  grep -q "accuracy (mean weights) [0-9.]*$" "$T/s0.txt" &&
  grep -q "accuracy (BMA, 0 samples) not computed$" "$T/s0.txt" &&
  grep -q "NLL (BMA) not computed$" "$T/s0.txt" && grep -q "ECE (BMA) not computed$" "$T/s0.txt" &&
  grep -q "accuracy after pruning (log alpha > 3) [0-9.]*$" "$T/s0.txt" ||
  { echo "FAIL: eval --samples 0 (text):"; cat "$T/s0.txt" "$T/err"; fail=$((fail + 1)); }
n=$((n + 1))
{ "$K" eval "$T/model.safetensors" --data "$T/good" --samples 0 --json >"$T/s0.json" &&
  "$K" eval "$T/model.safetensors" --data "$T/good" --samples 2 --json >"$T/s2.json"; } 2>"$T/err" &&
  python3 - "$T/s0.json" "$T/s2.json" <<'PY' ||
import json, sys
d0, d2 = (json.load(open(p)) for p in sys.argv[1:])
bma = ("accuracy_bma", "nll_bma", "ece")
assert d0["samples"] == 0 and all(d0[k] is None for k in bma), d0
assert all(isinstance(d0[k], float) for k in ("accuracy", "nll", "accuracy_pruned")), d0
assert d2["samples"] == 2 and all(isinstance(d2[k], float) for k in bma), d2
PY
  { echo "FAIL: eval --samples 0 (json):"; cat "$T/s0.json" "$T/err"; fail=$((fail + 1)); }
# resuming with data of the wrong shape
mkdir -p "$T/wide"
python3 - "$T/wide" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
for name, n in (("train", 20), ("t10k", 10)):
    gzip.open(f"{d}/{name}-images-idx3-ubyte.gz", "wb").write(struct.pack(">IIII", 0x803, n, 5, 5) + bytes(n * 25))
    gzip.open(f"{d}/{name}-labels-idx1-ubyte.gz", "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n)))
PY
expect 1 "features" -- "$K" train --data "$T/wide" --resume "$T/model.safetensors" --progress none
cmp -s "$T/model.safetensors" "$T/model.orig" || { echo "FAIL: checkpoint modified"; fail=$((fail + 1)); }
[ -z "$(ls "$T" | grep '\.tmp\.')" ] || { echo "FAIL: temporary files left"; fail=$((fail + 1)); }

echo "bad_input: $((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
