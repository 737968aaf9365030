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
# a failing save (directory missing) must leave the existing checkpoint untouched
expect 1 "cannot write" -- "$K" prune "$T/model.safetensors" --out "$T/nodir/x.safetensors"
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
