#!/usr/bin/env bash
# Bad input to `kronvi vae`: each case exits non-zero with a clear "kronvi:" message, never
# crashes (exit code >= 128), and writes nothing (no checkpoint, log or picture appears, an
# existing checkpoint keeps its bytes). Covers non-binary data for the Bernoulli decoder, an MN
# shape with P*Q != |z|, k = 0, a classifier checkpoint given to `vae eval` (and a VAE checkpoint
# given to the classifier commands), truncated and garbage checkpoints, and flag errors.
# usage: vae_bad_input.sh KRONVI TMPDIR
set -u
K=$1
T=$2
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D"; exit 1; }
fail=0
n=0

# expect CODE MESSAGE_PATTERN -- command...: exit code CODE (or "any" non-zero), message on stderr
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
# nothing PATH...: none of the files exists
nothing() {
  n=$((n + 1))
  for f in "$@"; do
    [ -e "$f" ] && { echo "FAIL: $f was written"; fail=$((fail + 1)); return; }
  done
}

# data: a binarized part of Fashion-MNIST, gray (non-binary) 28x28 images, binary 4x4 images
"$K" vae binarize --data "$D" --out "$T/bin" --limit-train 300 --limit-test 40 >/dev/null 2>"$T/err" ||
  { echo "setup: binarize failed"; cat "$T/err"; exit 1; }
python3 - "$T" <<'PY'
import gzip, os, struct, sys
d = sys.argv[1]
def write(sub, n, r, c, pix):
    os.makedirs(f"{d}/{sub}", exist_ok=True)
    for split, m in (("train", n), ("t10k", n // 2)):
        gzip.open(f"{d}/{sub}/{split}-images-idx3-ubyte.gz", "wb").write(
            struct.pack(">IIII", 0x803, m, r, c) + bytes(pix(i) for i in range(m * r * c)))
        gzip.open(f"{d}/{sub}/{split}-labels-idx1-ubyte.gz", "wb").write(
            struct.pack(">II", 0x801, m) + bytes(i % 3 for i in range(m)))
write("gray", 60, 28, 28, lambda i: (i * 7) % 256)
write("small", 60, 4, 4, lambda i: 255 * ((i * 5) % 3 == 0))
PY
"$K" vae train --data "$T/bin" --hidden 16 --layers 1 --latent 4 --epochs 1 --batch 50 --val 50 \
  --progress none --save "$T/v.st" >/dev/null 2>"$T/err" || { echo "setup: vae train failed"; cat "$T/err"; exit 1; }
"$K" train --data "$T/small" --arch 16-8-3 --epochs 1 --batch 10 --samples 1 --progress none \
  --save "$T/cls.st" >/dev/null 2>"$T/err" || { echo "setup: train failed"; cat "$T/err"; exit 1; }
cp "$T/v.st" "$T/v.orig"
OUT="--save $T/new.st --log $T/new.csv"

# non-binary data for the Bernoulli decoder
expect 1 "binary" -- "$K" vae train --data "$T/gray" $OUT --progress none
nothing "$T/new.st" "$T/new.csv"
expect 1 "Bernoulli decoder needs binary data" -- "$K" vae train --data "$D" --limit-train 200 --val 50 $OUT
nothing "$T/new.st" "$T/new.csv"
expect 1 "test images: image 0, pixel" -- "$K" vae eval "$T/v.st" --data "$T/gray" --k 5
expect 1 "binary" -- "$K" vae reconstruct "$T/v.st" --data "$T/gray" --out "$T/r.png"
nothing "$T/r.png"
# MN shape: P*Q != |z|, missing, malformed, for another family
expect 2 "P\*Q must equal |z|" -- "$K" vae train --data "$T/bin" --family mn --latent 40 --mn-shape 8x4 $OUT
nothing "$T/new.st" "$T/new.csv"
expect 2 "needs --mn-shape" -- "$K" vae train --data "$T/bin" --family mn --latent 9 $OUT
expect 2 "expects PxQ" -- "$K" vae train --data "$T/bin" --family mn --mn-shape 20y2 $OUT
expect 2 "expects PxQ" -- "$K" vae train --data "$T/bin" --family mn --mn-shape 0x4 $OUT
expect 2 "is for --family mn" -- "$K" vae train --data "$T/bin" --family diag --mn-shape 20x2 $OUT
nothing "$T/new.st" "$T/new.csv"
# k = 0 and other numbers
expect 2 "--k expects an integer in \[1," -- "$K" vae eval "$T/v.st" --data "$T/bin" --k 0
expect 2 "--k expects an integer" -- "$K" vae eval "$T/v.st" --data "$T/bin" --k many
expect 2 "--latent expects an integer" -- "$K" vae train --data "$T/bin" --latent 0 $OUT
expect 2 "--n expects an integer" -- "$K" vae sample "$T/v.st" --out "$T/s.png" --n 0
nothing "$T/s.png"
expect 2 "--lr expects a number" -- "$K" vae train --data "$T/bin" --lr -1 $OUT
expect 2 "unknown latent family" -- "$K" vae train --data "$T/bin" --family flow $OUT
expect 2 "--act expects elu or relu" -- "$K" vae train --data "$T/bin" --act none $OUT
# a classifier checkpoint given to the vae commands, and a VAE checkpoint to the classifier ones
expect 1 "a classifier checkpoint of 'kronvi train'" -- "$K" vae eval "$T/cls.st" --data "$T/bin"
expect 1 "not a VAE" -- "$K" vae sample "$T/cls.st" --out "$T/s.png"
nothing "$T/s.png"
expect 1 "not a VAE" -- "$K" vae train --data "$T/bin" --resume "$T/cls.st" --epochs 2
expect 1 "variational auto-encoder checkpoint" -- "$K" eval "$T/v.st" --data "$T/bin"
expect 1 "variational auto-encoder checkpoint" -- "$K" report "$T/v.st" --png "$T/m-"
nothing "$T/m-enc.fc0.png" "$T/m-fc0.png"
# truncated, garbage, missing checkpoints
head -c 2000 "$T/v.st" >"$T/trunc.st"
head -c 3000 /dev/urandom >"$T/garbage.st"
printf '' >"$T/empty.st"
expect 1 "cannot load model" -- "$K" vae eval "$T/trunc.st" --data "$T/bin"
expect 1 "cannot load model" -- "$K" vae eval "$T/garbage.st" --data "$T/bin"
expect 1 "cannot load model" -- "$K" vae sample "$T/empty.st" --out "$T/s.png"
expect 1 "No such file" -- "$K" vae eval "$T/missing.st" --data "$T/bin"
expect 1 "cannot resume" -- "$K" vae train --data "$T/bin" --resume "$T/trunc.st" --epochs 2
nothing "$T/s.png"
# a resumed run refuses contradicting settings and leaves its checkpoint alone
expect 1 "trained with --latent 4" -- "$K" vae train --data "$T/bin" --resume "$T/v.st" --latent 8 --epochs 3
expect 1 "trained with --family diag" -- "$K" vae train --data "$T/bin" --resume "$T/v.st" --family mv --epochs 3
expect 1 "takes 784 pixels but the data have 16" -- "$K" vae train --data "$T/small" --resume "$T/v.st" --epochs 3
expect 1 "the test images have 16 pixels" -- "$K" vae eval "$T/v.st" --data "$T/small"
n=$((n + 1))
cmp -s "$T/v.st" "$T/v.orig" || { echo "FAIL: the checkpoint changed"; fail=$((fail + 1)); }
# data and output problems
expect 1 "leave none" -- "$K" vae train --data "$T/bin" --val 300 $OUT --progress none
nothing "$T/new.st" "$T/new.csv"
expect 1 "No such file" -- "$K" vae train --data "$T/missing" $OUT
expect 1 "the directory does not exist" -- "$K" vae train --data "$T/bin" --save "$T/no/dir/x.st"
expect 1 "the directory does not exist" -- "$K" vae sample "$T/v.st" --out "$T/no/dir/s.png"
expect 1 "is the --data directory" -- "$K" vae binarize --data "$T/bin" --out "$T/bin"
expect 2 "does not take --out" -- "$K" vae eval "$T/v.st" --data "$T/bin" --out "$T/x.png"
expect 2 "--data is required" -- "$K" vae eval "$T/v.st"
expect 2 "--out is required" -- "$K" vae sample "$T/v.st"
expect 2 "exactly one MODEL" -- "$K" vae sample --out "$T/s.png"
expect 2 "unknown vae command" -- "$K" vae frobnicate
expect 2 "option of 'kronvi report'" -- "$K" eval "$T/cls.st" --data "$T/small" --png "$T/m-"

echo "vae_bad_input: $((n - fail)) of $n passed"
[ $fail -eq 0 ]
