#!/usr/bin/env bash
# Speed of two builds of kronvi, alternated in one run: bench_epoch's seconds per training step
# for the MLP and the CNN (mn and diag), REPS rounds of (before, after), then the medians, the
# minima and their ratios. For checking that a change costs no speed.
# usage: bench/compare_builds.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR
#   environment: REPS (default 5), CORE (OPENBLAS_CORETYPE for both; default: OpenBLAS's choice)
set -eu
A=$1/bench_epoch
B=$2/bench_epoch
[ -x "$A" ] && [ -x "$B" ] || { echo "usage: $0 BEFORE_BUILD AFTER_BUILD (with bench_epoch)"; exit 2; }
unset OPENBLAS_CORETYPE
[ -n "${CORE:-}" ] && export OPENBLAS_CORETYPE=$CORE
echo "load: $(uptime)"
raw=$(mktemp)
for r in $(seq 1 "${REPS:-5}"); do
  for side in before after; do
    bin=$A
    [ $side = after ] && bin=$B
    "$bin" --families mn,diag --reps 1 --steps 60 --profile-steps 0 --raw 2>/dev/null |
      grep RESULT | sed "s/^/$side mlp /"
    "$bin" --arch 1-10-mp-20-mp-40-mp-80-mp-flatten-10 --families mn,diag --reps 1 --steps 15 \
      --warmup 3 --profile-steps 0 --raw 2>/dev/null | grep RESULT | sed "s/^/$side cnn /"
  done
done >"$raw"
python3 - "$raw" <<'PY'
import re, statistics as st, sys
t = {}
core = "?"
for line in open(sys.argv[1]):
    side, model = line.split()[:2]
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    core = f.get("blas_core", core)
    t.setdefault((model, f["family"]), {}).setdefault(side, []).append(float(f["s_step"]) * 1e3)
print(f"BLAS core {core}; ms per training step (batch 100), {len(next(iter(t.values()))['before'])} rounds")
print("| net | family | before median (min) | after median (min) | after/before median | min |")
print("|---|---|---|---|---|---|")
for (m, fam), v in sorted(t.items()):
    a, b = v["before"], v["after"]
    print(f"| {m} | {fam} | {st.median(a):.2f} ({min(a):.2f}) | {st.median(b):.2f} ({min(b):.2f}) "
          f"| {st.median(b) / st.median(a):.3f} | {min(b) / min(a):.3f} |")
PY
rm -f "$raw"
