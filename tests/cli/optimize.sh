#!/usr/bin/env bash
# kronvi optimize and the solvers of kronvi train from the command line: a solver reaches the
# tolerance on a small problem with one line per iteration and a CSV log; bad input exits
# non-zero with a "kronvi:" message; a solver refuses a variational network.
# usage: optimize.sh KRONVI TMPDIR
set -u
K=$1
T=$2
rm -rf "$T" && mkdir -p "$T"
fail=0
check() { # description, then a command whose status must be 0
  local what=$1
  shift
  if ! "$@"; then echo "FAIL: $what"; fail=$((fail + 1)); fi
}
"$K" optimize --problem rosenbrock --dim 10 --method lm --log "$T/lm.csv" >"$T/out" 2>"$T/err"
check "lm reaches the tolerance (rc $?)" grep -q "reached after" "$T/out"
check "one line per iteration" test "$(grep -c ' f-f\* ' "$T/out")" -ge 5
check "CSV header and rows" test "$(wc -l <"$T/lm.csv")" -ge 5
check "CSV columns" grep -q "^iter,f,f_minus_fstar,gnorm,damping,rho" "$T/lm.csv"
for m in lbfgs newton hf; do
  "$K" optimize --problem quadratic --dim 20 --cond 100 --method $m --quiet >"$T/out" 2>&1
  check "$m on the quadratic" grep -q "reached after" "$T/out"
done
"$K" optimize --problem quadratic --dim 20 --method adam --max-iter 3 --quiet >"$T/out" 2>&1
check "not reached: exit 3" test $? -eq 3
for bad in "--problem nope --method lm" "--problem rosenbrock --method nope" \
  "--problem rosenbrock --dim 1 --method lm" "--problem logreg --method lm" \
  "--problem rosenbrock --method lm --cond 0" "--problem rosenbrock --method ngd --group up999" \
  "--problem rosenbrock --method ngd --group nope" "--problem rosenbrock --method ngd --estimator x" \
  "--problem rosenbrock --method ngd --curvature x" "--problem rosenbrock --dim 5000 --method ngd" \
  "--problem rosenbrock --method search --samples 0"; do
  # shellcheck disable=SC2086
  "$K" optimize $bad >"$T/out" 2>"$T/err"
  rc=$?
  check "'$bad' fails without a crash (rc $rc)" test $rc -ne 0 -a $rc -lt 128
  check "'$bad' says why" grep -q "kronvi:" "$T/err"
done
# a solver in training: refused for a variational family (tiny IDX data)
python3 - "$T" <<'PY'
import gzip, struct, sys, os
d = sys.argv[1]
for split, n in (("train", 20), ("t10k", 10)):
    with gzip.open(os.path.join(d, f"{split}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 4, 4) + bytes((i * 7) % 256 for i in range(n * 16)))
    with gzip.open(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n)))
PY
"$K" train --data "$T" --arch 16-5-3 --family mn --optimizer lm --epochs 1 --batch 20 \
  --progress none >"$T/out" 2>"$T/err"
rc=$?
check "lm with --family mn refused (rc $rc)" test $rc -ne 0 -a $rc -lt 128
check "the refusal names --family point" grep -q "family point" "$T/err"
for o in lm hf lbfgs newton proximal; do
  "$K" train --data "$T" --arch 16-5-3 --family point --optimizer $o --epochs 2 --batch 20 \
    --samples 0 --progress none --save "$T/$o.safetensors" >"$T/out" 2>"$T/err"
  check "$o trains a point net (rc $?)" grep -q "trained 2 epochs" "$T/out"
  "$K" train --data "$T" --resume "$T/$o.safetensors" --epochs 3 --samples 0 \
    --progress none >"$T/out" 2>"$T/err"
  check "$o resumes" grep -q "trained 3 epochs" "$T/out"
done
echo "optimize.sh: $fail failures"
[ $fail -eq 0 ]
