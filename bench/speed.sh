#!/usr/bin/env bash
# The speed acceptance tables: kronvi against PyTorch at its best on this machine, as markdown.
#
#   bench/speed.sh [--quick] [--tables abcd] [--build DIR] [--out DIR]
#
#   (a) MLP 784-300-300-300-10, seconds per epoch (s/step x 600) for point / diag / mn: kronvi
#       (build/bench_epoch, --threads 2) against PyTorch (bench/torch_mlp.py) at its fastest
#       thread setting, ratio PyTorch/kronvi, kronvi MN/DIAG
#   (b) the same for the CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 (bench/torch_cnn.py)
#   (c) whole process, EPOCHS (2) epochs of MN with ARD, MLP and CNN: `kronvi train` with its
#       defaults against bench/torch_train.py (training + mean and pruned test accuracy after
#       every epoch), wall time including start-up and data loading
#   (d) contention: a busy loop pinned to core 0 (taskset -c 0) while the MLP and CNN MN epoch
#       run at kronvi --threads 2 and --threads 1 (ratio 2-thread/1-thread, target <= 1.2), and
#       PyTorch at its two settings with OPENBLAS_NUM_THREADS=1 beside the same burner
#
# Every measurement is its own process. Repetition r runs, for each family, every configuration
# of both sides back to back (the order rotates with r), so slow phases of a shared machine hit
# both sides alike; tables show medians over REPS and the ratios come from the same run.
# PyTorch's settings: torch.set_num_threads(T) with OMP_NUM_THREADS=T for T in 2 1, times
# OPENBLAS_NUM_THREADS in 2 1 (its matrix products go to OpenBLAS, whose own threads only that
# variable sets); each table takes, per family, the setting with the smallest median. Every
# benchmark command runs with OPENBLAS_CORETYPE unset (env -u): a value pins OpenBLAS to older
# kernels; except when OpenBLAS alone does not recognise the CPU and `kronvi` picks the kernels
# of its ISA: then both sides run with that choice. Peak memory: getrusage ru_maxrss of each measuring process (bench_epoch and the
# PyTorch children report their own; whole processes are measured from outside by
# bench/measure.py).
#
# Options and environment (defaults in parentheses; --quick: the values after "quick"):
#   --quick            a short run to check that everything works (a few minutes; noisy)
#   --tables LIST      which tables, e.g. "ab" or "c" (TABLES, abcd)
#   --build DIR        kronvi build with bench_epoch and kronvi (BUILD, build-bench; built
#                      if missing)
#   --out DIR          results (OUT, bench/results/speed/UTC-TIMESTAMP[-quick])
#   STEPS_MLP (100; quick 10)  WARMUP_MLP (10; quick 2)   timed / untimed steps per process
#   STEPS_CNN (30; quick 3)    WARMUP_CNN (5; quick 1)
#   REPS (3; quick 1)          repetitions of tables a, b, d
#   REPS_TRAIN (2; quick 1)    repetitions of table c
#   EPOCHS (2)                 epochs of table c
#   LIMIT_TRAIN (all; quick 2000), LIMIT_TEST (all; quick 1000): rows used by table c
#   STEPS_BURN_MLP, STEPS_BURN_CNN (600 = one epoch; quick 20): kronvi's timed steps in table d,
#                      from the first step (no warm-up: the thread governor's start and its
#                      probes are part of the epoch)
#   STEPS_BURN_TORCH_MLP (60; quick 5), STEPS_BURN_TORCH_CNN (20; quick 2): PyTorch's in table d
#   FAMILIES ("point diag mn"), TORCH_SETTINGS ("2:2 2:1 1:2 1:1", torch threads:OpenBLAS
#   threads), BURN_CORE (0), PY (/usr/bin/python3), DATA (/usr/share/datasets/fashion-mnist),
#   TORCH_MALLOC (tuned: glibc's malloc keeps freed memory for PyTorch, bench/torch_malloc.py;
#   default: glibc's defaults, which cost PyTorch up to 2x on a VM with expensive page faults)
# Before and after the tables, the point MLP step runs on one thread pinned to each CPU in turn:
# unequal times mean the vCPUs are not equally fast right now (read the 2-thread ratios with that).
# Output: the tables on stdout and in OUT/tables.md, one CSV row per measurement in
# OUT/raw.csv, the machine and software in OUT/env.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
TABLES=${TABLES:-abcd}
BUILD=${BUILD:-build-bench}
OUT=${OUT:-}
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --tables) TABLES=${2:?--tables needs a value}; shift ;;
    --build) BUILD=${2:?--build needs a value}; shift ;;
    --out) OUT=${2:?--out needs a value}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "speed.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! $TABLES =~ ^[abcd]+$ ]]; then
  echo "speed.sh: --tables takes letters from abcd, not '$TABLES'" >&2
  exit 2
fi
q() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; } # q FULL QUICK
STEPS_MLP=${STEPS_MLP:-$(q 100 10)} WARMUP_MLP=${WARMUP_MLP:-$(q 10 2)}
STEPS_CNN=${STEPS_CNN:-$(q 30 3)} WARMUP_CNN=${WARMUP_CNN:-$(q 5 1)}
REPS=${REPS:-$(q 3 1)} REPS_TRAIN=${REPS_TRAIN:-$(q 2 1)} EPOCHS=${EPOCHS:-2}
LIMIT_TRAIN=${LIMIT_TRAIN:-$(q 0 2000)} LIMIT_TEST=${LIMIT_TEST:-$(q 0 1000)}
STEPS_BURN_MLP=${STEPS_BURN_MLP:-$(q 600 20)} STEPS_BURN_CNN=${STEPS_BURN_CNN:-$(q 600 20)}
STEPS_BURN_TORCH_MLP=${STEPS_BURN_TORCH_MLP:-$(q 60 5)}
STEPS_BURN_TORCH_CNN=${STEPS_BURN_TORCH_CNN:-$(q 20 2)}
FAMILIES=${FAMILIES:-point diag mn}
TORCH_SETTINGS=${TORCH_SETTINGS:-2:2 2:1 1:2 1:1}
BURN_CORE=${BURN_CORE:-0}
PY=${PY:-/usr/bin/python3}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
ARCH_MLP=784-300-300-300-10
ARCH_CNN=1-10-mp-20-mp-40-mp-80-mp-flatten-10
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-bench/results/speed/$STAMP$(if [[ $QUICK == 1 ]]; then echo -quick; fi)}

die() { echo "speed.sh: $*" >&2; exit 1; }

# ---- prerequisites ------------------------------------------------------------------------------
[[ -x $PY ]] || die "no Python at $PY (set PY=...)"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  die "PyTorch is missing for $PY (Debian: apt-get install python3-torch; or set PY=...)"
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
  t10k-labels-idx1-ubyte; do
  [[ -e $DATA/$f.gz ]] || die "Fashion-MNIST is missing: no $DATA/$f.gz (set DATA=DIR)"
done
if [[ $TABLES == *d* ]] && ! command -v taskset >/dev/null; then
  die "table d needs taskset (util-linux)"
fi
if [[ ! -x $BUILD/bench_epoch || ! -x $BUILD/kronvi ]]; then
  echo "speed.sh: building bench_epoch and kronvi in $BUILD" >&2
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target bench_epoch kronvi >/dev/null
fi
mkdir -p "$OUT"
RAW=$OUT/raw.csv
LOGDIR=$(mktemp -d)
BURNER_PID=
cleanup() {
  if [[ -n $BURNER_PID ]]; then kill "$BURNER_PID" 2>/dev/null || true; fi
  rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

KVI_ENV=(env -u OPENBLAS_CORETYPE)
# whatever `kronvi --version` prints after "BLAS core" (the core, and the SIMD ISA where printed)
VERSION=$("${KVI_ENV[@]}" "$BUILD/kronvi" --version 2>&1 | head -n1)
KVI_CORE=$(sed -n 's/.*BLAS core \(.*\)$/\1/p' <<<"$VERSION" | sed 's/)$//')
KVI_CORE=${KVI_CORE:-?}
# When OpenBLAS alone falls back to old kernels on this CPU, `kronvi` picks the ones matching its
# ISA ("BLAS core SkylakeX (OpenBLAS detected Prescott)"): every process of both sides then runs
# with that OPENBLAS_CORETYPE (bench_epoch --child and PyTorch cannot pick it themselves, and
# PyTorch's products are faster with it too).
PICKED=$(sed -n 's/.*BLAS core \([A-Za-z0-9]*\) (OpenBLAS detected.*/\1/p' <<<"$VERSION")
if [[ -n $PICKED ]]; then KVI_ENV=(env OPENBLAS_CORETYPE="$PICKED"); fi
TORCH_INFO=$("$PY" -c 'import re, torch; s = torch.__config__.show(); c = re.search(r"CPU capability usage: (\w+)", s); print(torch.__version__, "(" + (c.group(1) if c else "?") + ",", re.search(r"BLAS_INFO=\w+", s).group(0) + ")")')
load() { cut -d' ' -f1-3 /proc/loadavg; }
# The point MLP step on one thread pinned to each CPU in turn (ms): equal on a quiet machine. On a
# VM whose vCPUs share their cores with other guests one can be much slower than the other, and
# then every evenly split parallel region runs at the slower one's pace.
cpu_speeds() {
  local c out
  for ((c = 0; c < $(nproc); c++)); do
    out=$("${KVI_ENV[@]}" taskset -c "$c" "$BUILD/bench_epoch" --families point --threads 1 \
      --reps 1 --steps 100 --warmup 10 --profile-steps 0 --fixed-threads --raw 2>/dev/null |
      grep -o 's_step=[^ ]*' | cut -d= -f2)
    printf 'cpu%d %s ms  ' "$c" "$(awk -v s="${out:-nan}" 'BEGIN { printf "%.2f", 1000 * s }')"
  done
}
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "uptime: $(uptime)"
  echo "cpu: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "point MLP step pinned to each CPU, one thread, at the start: $(cpu_speeds)"
  echo "kronvi: $VERSION (run with OPENBLAS_CORETYPE unset; as is: '${OPENBLAS_CORETYPE:-(unset)}')"
  echo "kronvi BLAS core: $KVI_CORE"
  [[ -z $PICKED ]] || echo "both sides run with OPENBLAS_CORETYPE=$PICKED (the kernels kronvi picks for this CPU)"
  echo "torch: $TORCH_INFO; libblas.so.3 -> $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo '?'); glibc malloc ${TORCH_MALLOC:-tuned} (bench/torch_malloc.py)"
  echo "settings: quick=$QUICK tables=$TABLES STEPS_MLP=$STEPS_MLP WARMUP_MLP=$WARMUP_MLP STEPS_CNN=$STEPS_CNN WARMUP_CNN=$WARMUP_CNN REPS=$REPS REPS_TRAIN=$REPS_TRAIN EPOCHS=$EPOCHS LIMIT_TRAIN=$LIMIT_TRAIN LIMIT_TEST=$LIMIT_TEST STEPS_BURN_MLP=$STEPS_BURN_MLP STEPS_BURN_CNN=$STEPS_BURN_CNN STEPS_BURN_TORCH_MLP=$STEPS_BURN_TORCH_MLP STEPS_BURN_TORCH_CNN=$STEPS_BURN_TORCH_CNN FAMILIES='$FAMILIES' TORCH_SETTINGS='$TORCH_SETTINGS'"
} | tee "$OUT/env.txt"
echo "table,model,side,config,family,rep,threads,openblas,burner,s_step,wall_s,maxrss_kb,blas_core,acc,pruned_acc,load1" >"$RAW"
T_START=$(date +%s)

kv() { grep -o " $1=[^ ]*" <<<"$2" | head -n1 | cut -d= -f2; } # kv KEY "RESULT ..."
row() { echo "$*" | tr ' ' ',' >>"$RAW"; }

# kvi TABLE MODEL FAMILY REP THREADS STEPS WARMUP BURNER: one bench_epoch child
kvi() {
  local table=$1 model=$2 fam=$3 rep=$4 thr=$5 steps=$6 warm=$7 burn=$8 arch out
  arch=$([[ $model == cnn ]] && echo $ARCH_CNN || echo $ARCH_MLP)
  out=$("${KVI_ENV[@]}" "$BUILD/bench_epoch" --child "$fam" --threads "$thr" --steps "$steps" \
    --warmup "$warm" --no-profile --arch "$arch" --data "$DATA" 2>"$LOGDIR/err" | grep '^RESULT' || true)
  [[ -n $out ]] || die "bench_epoch $model $fam --threads $thr failed: $(tail -n3 "$LOGDIR/err")"
  row "$table $model kronvi t$thr $fam $rep $thr - $burn $(kv s_step "$out") - $(kv maxrss_kb "$out") $(kv blas_core "$out") - - $(cut -d' ' -f1 /proc/loadavg)"
  printf '  %-4s %-6s %-7s t%-6s rep %d  %8.2f s/epoch\n' "$table" "$model" kronvi "$thr" "$rep" \
    "$(awk -v s="$(kv s_step "$out")" 'BEGIN{print s*600}')" >&2
}

# pt TABLE MODEL FAMILY REP T:OB STEPS WARMUP BURNER: one PyTorch child
pt() {
  local table=$1 model=$2 fam=$3 rep=$4 set=$5 steps=$6 warm=$7 burn=$8 out thr ob script
  thr=${set%%:*} ob=${set##*:}
  script=$([[ $model == cnn ]] && echo bench/torch_cnn.py || echo bench/torch_mlp.py)
  out=$("${KVI_ENV[@]}" OMP_NUM_THREADS="$thr" OPENBLAS_NUM_THREADS="$ob" "$PY" "$script" \
    --child "$fam" --threads "$thr" --steps "$steps" --warmup "$warm" --data "$DATA" \
    2>"$LOGDIR/err" | grep '^RESULT' || true)
  [[ -n $out ]] || die "$script $fam $set failed: $(tail -n3 "$LOGDIR/err")"
  row "$table $model pytorch omp$thr-ob$ob $fam $rep $thr $ob $burn $(kv s_step "$out") - $(kv maxrss_kb "$out") - - - $(cut -d' ' -f1 /proc/loadavg)"
  printf '  %-4s %-6s %-7s %-7s rep %d  %8.2f s/epoch\n' "$table" "$model" pytorch "$thr:$ob" "$rep" \
    "$(awk -v s="$(kv s_step "$out")" 'BEGIN{print s*600}')" >&2
}

# table a / b: every family, kronvi --threads 2 and every PyTorch setting, interleaved
epoch_table() { # TABLE MODEL STEPS WARMUP
  local table=$1 model=$2 steps=$3 warm=$4 r f c n
  local confs=("kvi:2")
  for s in $TORCH_SETTINGS; do confs+=("pt:$s"); done
  n=${#confs[@]}
  echo "table $table ($model): $REPS repetition(s), $steps timed steps after $warm; load $(load)" >&2
  for ((r = 1; r <= REPS; r++)); do
    for f in $FAMILIES; do
      for ((c = 0; c < n; c++)); do
        local cf=${confs[$(((c + r - 1) % n))]}
        if [[ $cf == kvi:* ]]; then
          kvi "$table" "$model" "$f" "$r" 2 "$steps" "$warm" 0
        else
          pt "$table" "$model" "$f" "$r" "${cf#pt:}" "$steps" "$warm" 0
        fi
      done
    done
  done
}

# the PyTorch setting with the smallest median in table a/b for MN (2:1 when not measured)
best_torch() { # TABLE MODEL
  "$PY" bench/speed_tables.py --best "$1" "$2" "$RAW" 2>/dev/null || echo 2:1
}

# table c: whole processes
train_table() {
  local r model arch out k tset thr ob lim=()
  [[ $LIMIT_TRAIN -gt 0 ]] && lim+=(--limit-train "$LIMIT_TRAIN")
  [[ $LIMIT_TEST -gt 0 ]] && lim+=(--limit-test "$LIMIT_TEST")
  echo "table c: $REPS_TRAIN repetition(s) of $EPOCHS epochs; load $(load)" >&2
  for ((r = 1; r <= REPS_TRAIN; r++)); do
    for model in mlp cnn; do
      arch=$([[ $model == cnn ]] && echo $ARCH_CNN || echo $ARCH_MLP)
      tset=$(best_torch "$([[ $model == cnn ]] && echo b || echo a)" "$model")
      thr=${tset%%:*} ob=${tset##*:}
      for k in 0 1; do
        if [[ $(((k + r) % 2)) == 1 ]]; then
          out=$("$PY" bench/measure.py "$LOGDIR/train.log" -- "${KVI_ENV[@]}" "$BUILD/kronvi" \
            train --data "$DATA" --arch "$arch" --family mn --prior ard --epochs "$EPOCHS" \
            --seed 1 "${lim[@]}")
          [[ $(kv rc " $out") == 0 ]] || die "kronvi train ($model) failed: $(tail -n3 "$LOGDIR/train.log")"
          local acc pacc
          acc=$(sed -n 's/.*accuracy \([0-9.]*\) (mean weights).*/\1/p' "$LOGDIR/train.log" | tail -n1)
          pacc=$(sed -n 's/.*accuracy after pruning \([0-9.]*\).*/\1/p' "$LOGDIR/train.log" | tail -n1)
          row "c $model kronvi t2 mn $r 2 - 0 - $(kv wall_s " $out") $(kv maxrss_kb " $out") ${KVI_CORE%%[ ,]*} ${acc:--} ${pacc:--} $(cut -d' ' -f1 /proc/loadavg)"
          printf '  c    %-6s kronvi  t2      rep %d  %8.1f s\n' "$model" "$r" "$(kv wall_s " $out")" >&2
        else
          out=$("$PY" bench/measure.py "$LOGDIR/train.log" -- "${KVI_ENV[@]}" \
            OMP_NUM_THREADS="$thr" OPENBLAS_NUM_THREADS="$ob" "$PY" bench/torch_train.py \
            --model "$model" --family mn --epochs "$EPOCHS" --threads "$thr" --seed 1 \
            --data "$DATA" "${lim[@]}")
          [[ $(kv rc " $out") == 0 ]] || die "torch_train.py ($model) failed: $(tail -n3 "$LOGDIR/train.log")"
          local res
          res=$(grep '^RESULT' "$LOGDIR/train.log" | tail -n1)
          row "c $model pytorch omp$thr-ob$ob mn $r $thr $ob 0 - $(kv wall_s " $out") $(kv maxrss_kb " $out") - $(kv acc "$res") $(kv pruned_acc "$res") $(cut -d' ' -f1 /proc/loadavg)"
          printf '  c    %-6s pytorch %-7s rep %d  %8.1f s\n' "$model" "$thr:$ob" "$r" "$(kv wall_s " $out")" >&2
        fi
      done
    done
  done
}

# table d: the same MN epoch beside a busy loop on one core
burn_table() {
  local r model steps tsteps warm c
  taskset -c "$BURN_CORE" sh -c 'while :; do :; done' &
  BURNER_PID=$!
  sleep 1
  kill -0 "$BURNER_PID" 2>/dev/null || die "the CPU burner (taskset -c $BURN_CORE) did not start"
  echo "table d: burner pid $BURNER_PID on core $BURN_CORE; $REPS repetition(s); load $(load)" >&2
  local confs=("kvi:2" "kvi:1" "pt:2:1" "pt:1:1")
  for ((r = 1; r <= REPS; r++)); do
    for model in mlp cnn; do
      if [[ $model == cnn ]]; then steps=$STEPS_BURN_CNN tsteps=$STEPS_BURN_TORCH_CNN warm=$WARMUP_CNN
      else steps=$STEPS_BURN_MLP tsteps=$STEPS_BURN_TORCH_MLP warm=$WARMUP_MLP; fi
      for ((c = 0; c < 4; c++)); do
        local cf=${confs[$(((c + r - 1) % 4))]}
        if [[ $cf == kvi:* ]]; then
          kvi d "$model" mn "$r" "${cf#kvi:}" "$steps" 0 1
        else
          pt d "$model" mn "$r" "${cf#pt:}" "$tsteps" "$warm" 1
        fi
      done
    done
  done
  kill "$BURNER_PID" 2>/dev/null || true
  wait "$BURNER_PID" 2>/dev/null || true
  BURNER_PID=
}

if [[ $TABLES == *a* ]]; then epoch_table a mlp "$STEPS_MLP" "$WARMUP_MLP"; fi
if [[ $TABLES == *b* ]]; then epoch_table b cnn "$STEPS_CNN" "$WARMUP_CNN"; fi
if [[ $TABLES == *c* ]]; then train_table; fi
if [[ $TABLES == *d* ]]; then burn_table; fi
echo "speed.sh: measurements took $(($(date +%s) - T_START)) s; load $(load)" >&2
echo "point MLP step pinned to each CPU, one thread, at the end: $(cpu_speeds)" | tee -a "$OUT/env.txt"

"$PY" bench/speed_tables.py --env "$OUT/env.txt" --load-end "$(load)" "$RAW" | tee "$OUT/tables.md"
echo "speed.sh: results in $OUT (tables.md, raw.csv, env.txt)"
