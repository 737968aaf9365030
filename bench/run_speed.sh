#!/usr/bin/env bash
# Speed acceptance of the Fashion-MNIST MLP (784-300-300-300-10, ELU, ARD, Adam, batch 100):
# kronvi (bench/bench_epoch.c) against PyTorch (bench/torch_mlp.py), interleaved, in one go.
# MODEL=cnn does the same for the CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 (bench/torch_cnn.py;
# families point, diag, mn; targets MN >= 2x PyTorch and MN/DIAG <= 2).
#
#   bench/run_speed.sh [--synthetic]        (--synthetic: MLP only)
#
# Every measurement is one process that loads the data, builds the model, runs WARMUP untimed
# and STEPS timed training steps and reports seconds/step and its peak RSS. Repetition r runs,
# for every family, every configuration of both sides one after the other (the order of the
# configurations rotates with r), so slow phases of a shared machine hit all of them alike.
# Medians over the REPS repetitions; s/epoch = s/step x 600.
#
# Configurations (environment of the process):
#   kronvi  --threads 2 | 1, OPENBLAS_CORETYPE as is | unset (env -u), and --threads 2 with
#           OMP_WAIT_POLICY=passive (diagnostic: OpenMP workers sleep instead of spinning)
#   PyTorch torch.set_num_threads(T) with OMP_NUM_THREADS=MKL_NUM_THREADS=T, T = 2 | 1,
#           OPENBLAS_NUM_THREADS = 2 | 1 (torch's matmuls go to OpenBLAS, whose threads only this
#           variable sets), OPENBLAS_CORETYPE as is | unset
# Then: one epoch of `kronvi train` per family (the printed epoch time, a cross-check of the
# extrapolation) and the per-phase profile of bench_epoch.
#
# BASE=DIR (optional) adds the same four kronvi configurations for DIR/bench_epoch, named base-*,
# e.g. a build of an earlier commit, interleaved with the others for a before/after comparison.
# When OPENBLAS_CORETYPE is not set, the "-ctunset" configurations equal the others and are
# skipped.
# Environment knobs: MODEL (mlp | cnn), BUILD (build-bench), BASE (unset), STEPS (100; cnn 30),
# WARMUP (10; cnn 5), REPS (3),
# FAMILIES ("point diag mn mn-diag"), TRAIN_THREADS ("2 1": threads of the `kronvi train` runs,
# empty to skip), PROFILE (1), PY (/usr/bin/python3), LOG ($BUILD/bench-speed.log: all raw lines).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-bench}
MODEL=${MODEL:-mlp}
if [[ $MODEL == cnn ]]; then
  ARCH=1-10-mp-20-mp-40-mp-80-mp-flatten-10 TORCH=bench/torch_cnn.py SPEED_T=2 RATIO_T=2
  STEPS=${STEPS:-30} WARMUP=${WARMUP:-5} FAMILIES=${FAMILIES:-point diag mn}
elif [[ $MODEL == mlp ]]; then
  ARCH=784-300-300-300-10 TORCH=bench/torch_mlp.py SPEED_T=3 RATIO_T=1.5
  STEPS=${STEPS:-100} WARMUP=${WARMUP:-10} FAMILIES=${FAMILIES:-point diag mn mn-diag}
else
  echo "run_speed: MODEL must be mlp or cnn" >&2
  exit 2
fi
REPS=${REPS:-3}
TRAIN_THREADS=${TRAIN_THREADS-2 1}
PROFILE=${PROFILE:-1}
PY=${PY:-/usr/bin/python3}
LOG=${LOG:-$BUILD/bench-speed.log}
DATA=/usr/share/datasets/fashion-mnist
DATA_ARGS=(--data "$DATA")
if [[ ${1:-} == --synthetic && $MODEL == mlp ]]; then
  DATA_ARGS=(--synthetic)
elif [[ -n ${1:-} ]]; then
  echo "usage: $0 [--synthetic]" >&2
  exit 2
fi

if [[ ! -x $BUILD/bench_epoch || ! -x $BUILD/kronvi ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target bench_epoch kronvi >/dev/null
fi

CT_ASIS=${OPENBLAS_CORETYPE:-}
: >"$LOG"

# name | side | threads | OPENBLAS_NUM_THREADS (torch) | coretype asis/unset | extra env
CONFIGS=(
  "kvi-t2|k|2|-|asis|"
  "kvi-t2-ctunset|k|2|-|unset|"
  "kvi-t1|k|1|-|asis|"
  "kvi-t1-ctunset|k|1|-|unset|"
  "kvi-t2-passive|k|2|-|asis|OMP_WAIT_POLICY=passive"
  "pt-omp2-ob2|t|2|2|asis|"
  "pt-omp2-ob1|t|2|1|asis|"
  "pt-omp1-ob2|t|1|2|asis|"
  "pt-omp1-ob1|t|1|1|asis|"
  "pt-omp2-ob2-ctunset|t|2|2|unset|"
  "pt-omp2-ob1-ctunset|t|2|1|unset|"
  "pt-omp1-ob2-ctunset|t|1|2|unset|"
  "pt-omp1-ob1-ctunset|t|1|1|unset|"
)
if [[ -z $CT_ASIS ]]; then # unset already: the -ctunset runs would repeat the others
  for i in "${!CONFIGS[@]}"; do [[ ${CONFIGS[$i]} == *ctunset* ]] && unset 'CONFIGS[i]'; done
  CONFIGS=("${CONFIGS[@]}")
fi
if [[ -n ${BASE:-} ]]; then
  CONFIGS+=("base-t2|b|2|-|asis|" "base-t2-ctunset|b|2|-|unset|" "base-t1|b|1|-|asis|"
            "base-t1-ctunset|b|1|-|unset|")
fi

run_one() { # config-line family
  local name side thr ob ct extra fam=$2 out
  IFS='|' read -r name side thr ob ct extra <<<"$1"
  local envs=()
  [[ $ct == unset ]] && envs+=(-u OPENBLAS_CORETYPE)
  [[ -n $extra ]] && envs+=("$extra")
  if [[ $side == k || $side == b ]]; then
    local bin="$BUILD/bench_epoch"
    [[ $side == b ]] && bin="$BASE/bench_epoch"
    out=$(env "${envs[@]}" "$bin" --child "$fam" --threads "$thr" --steps "$STEPS" \
      --warmup "$WARMUP" --no-profile --arch "$ARCH" "${DATA_ARGS[@]}" | grep '^RESULT' || true)
  else
    out=$(env "${envs[@]}" OMP_NUM_THREADS="$thr" MKL_NUM_THREADS="$thr" \
      OPENBLAS_NUM_THREADS="$ob" "$PY" "$TORCH" --child "$fam" --threads "$thr" \
      --steps "$STEPS" --warmup "$WARMUP" "${DATA_ARGS[@]}" | grep '^RESULT' || true)
  fi
  if [[ -z $out ]]; then
    echo "run_speed: $name $fam failed" >&2
    return 1
  fi
  echo "CONF=$name $out" >>"$LOG"
  printf '  %-22s %-8s %s\n' "$name" "$fam" "$(grep -o 's_step=[^ ]*' <<<"$out")"
}

echo "run_speed: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run_speed: model $MODEL ($ARCH); OPENBLAS_CORETYPE as is = '${CT_ASIS:-(unset)}'; STEPS=$STEPS WARMUP=$WARMUP REPS=$REPS; data: ${DATA_ARGS[*]}"
echo "run_speed: torch $("$PY" -c 'import torch; print(torch.__version__)') with $("$PY" -c 'import torch,re; s=torch.__config__.show(); print(re.search(r"BLAS_INFO=(\w+)", s).group(0))'), libblas.so.3 -> $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)"
t_start=$(date +%s)
n=${#CONFIGS[@]}
for ((r = 0; r < REPS; r++)); do
  echo "repetition $((r + 1))/$REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for fam in $FAMILIES; do
    for ((c = 0; c < n; c++)); do
      run_one "${CONFIGS[$(((c + r * 5) % n))]}" "$fam"
    done
  done
done
echo "sweep took $(($(date +%s) - t_start)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$LOG" "$FAMILIES" "$SPEED_T" "$RATIO_T" <<'EOF'
import statistics, sys
from collections import defaultdict
log, fams = sys.argv[1], sys.argv[2].split()
speed_t, ratio_t = float(sys.argv[3]), float(sys.argv[4])
rows = defaultdict(list)
for line in open(log):
    kv = dict(t.split("=", 1) for t in line.split() if "=" in t)
    rows[(kv["CONF"], kv["family"])].append((float(kv["s_step"]), int(kv["maxrss_kb"]) / 1024))
confs = []
for c, _ in rows:
    if c not in confs:
        confs.append(c)
kconfs = [c for c in confs if c.startswith("kvi")]
tconfs = [c for c in confs if c.startswith("pt")]
bconfs = [c for c in confs if c.startswith("base")]
med = {k: statistics.median(t for t, _ in v) for k, v in rows.items()}
rss = {k: max(m for _, m in v) for k, v in rows.items()}
print("\nall configurations: s/epoch (median of s/step x 600; min-max over repetitions)")
print(f"{'configuration':<22} " + " ".join(f"{f:>20}" for f in fams))
for c in kconfs + bconfs + tconfs:
    cells = []
    for f in fams:
        v = [t for t, _ in rows.get((c, f), [])]
        cells.append(f"{med[(c, f)] * 600:7.1f} ({min(v) * 600:5.1f}-{max(v) * 600:5.1f})" if v else f"{'-':>20}")
    print(f"{c:<22} " + " ".join(f"{x:>20}" for x in cells))

def best(cs, f):
    cs = [c for c in cs if (c, f) in med]
    return min(cs, key=lambda c: med[(c, f)]) if cs else None

def table(title, kpick):
    print(f"\n{title}")
    print(f"{'family':<8} | {'kronvi s/epoch':>14} | {'PyTorch s/epoch':>15} | {'speed-up':>8} | "
          f"{'kronvi X/DIAG':>13} | {'peak MB kronvi':>14} | {'peak MB torch':>13} | configurations")
    out = {}
    for f in fams:
        kc, tc = kpick(f), best(tconfs, f)
        if kc is None or tc is None:
            continue
        k, t = med[(kc, f)], med[(tc, f)]
        ratio = k / med[(kc, "diag")] if (kc, "diag") in med else float("nan")
        out[f] = (t / k, ratio)
        print(f"{f:<8} | {k * 600:14.1f} | {t * 600:15.1f} | {t / k:7.2f}x | {ratio:13.2f} | "
              f"{rss[(kc, f)]:14.1f} | {rss[(tc, f)]:13.1f} | {kc} vs {tc}")
    if "mn" in out:
        s, r = out["mn"]
        print(f"targets: MN speed-up {s:.2f}x (>= {speed_t:g}: {'PASS' if s >= speed_t else 'FAIL'}), "
              f"kronvi MN/DIAG {r:.2f} (<= {ratio_t:g}: {'PASS' if r <= ratio_t else 'FAIL'})")

table("kronvi best configuration per family vs PyTorch best configuration per family "
      "(X/DIAG: kronvi s/epoch of the family over DIAG's in the same kronvi configuration)",
      lambda f: best(kconfs, f))
if bconfs:
    table("BASE (before) best configuration per family vs PyTorch best configuration",
          lambda f: best(bconfs, f))
if "kvi-t2" in kconfs:
    table("kronvi default (--threads 2, OPENBLAS_CORETYPE as is) vs PyTorch best configuration",
          lambda f: "kvi-t2")
EOF

if [[ -n $TRAIN_THREADS ]]; then
  echo
  echo "kronvi train, 1 epoch (--samples 0): the epoch time it prints vs the bench_epoch extrapolation"
  printf '%-8s %-8s %12s %14s\n' family threads "epoch s" "wall s"
  for thr in $TRAIN_THREADS; do
    for fam in $FAMILIES; do
      t0=$(date +%s.%N)
      line=$("$BUILD/kronvi" train --data "$DATA" --arch "$ARCH" --family "$fam" \
        --prior ard --epochs 1 --samples 0 --threads "$thr" --progress lines 2>&1 | grep -E '^epoch +1 ' || true)
      t1=$(date +%s.%N)
      es=$(grep -oE '[0-9.]+s$' <<<"$line" | tr -d s)
      printf '%-8s %-8s %12s %14.1f\n' "$fam" "$thr" "${es:-?}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
      echo "TRAIN family=$fam threads=$thr epoch_s=${es:-nan} line=[$line]" >>"$LOG"
    done
  done
fi

if [[ $PROFILE == 1 ]]; then
  for thr in 2 1; do
    echo
    "$BUILD/bench_epoch" --threads "$thr" --steps "$STEPS" --warmup "$WARMUP" --reps "$REPS" \
      --families "$(tr ' ' ',' <<<"$FAMILIES")" --arch "$ARCH" "${DATA_ARGS[@]}"
  done
fi
echo
echo "run_speed: done in $(($(date +%s) - t_start)) s; raw lines in $LOG"
