#!/usr/bin/env bash
# Data-parallel scaling of kronvi train on this machine, and the communication model extrapolated
# to larger runs (docs/distributed.md). For the MLP 784-300-300-300-10, the CNN
# 1-10-mp-20-mp-40-mp-80-mp-flatten-10 and the VGG-like net
# 1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10 (28 x 28 images), mn and diag,
# global batch 100: one epoch on N Fashion-MNIST images with P = 1 and P = 2 processes of one
# thread each (mpirun
# --oversubscribe; P = 2 also with --overlap on), examples per second from the epoch's training
# seconds in the CSV log (the evaluation is not counted), and the share of those seconds that
# rank 0 spent in sums (waiting for the other process included). Then bench/comm_model.py with the
# gradient sizes of these nets (from their checkpoints) and the measured P = 1 seconds per example.
# Output: a table on stdout, also written to bench/results/mpi/scaling.txt.
# usage: bash bench/mpi_scaling.sh [--build DIR] [--quick]   (--quick: a tenth of the examples)
set -u
cd "$(dirname "$0")/.."
BUILD=build-mpi
QUICK=0
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2; shift ;;
    --quick) QUICK=1 ;;
    *) echo "usage: bash bench/mpi_scaling.sh [--build DIR] [--quick]"; exit 2 ;;
  esac
  shift
done
K=$BUILD/kronvi
D=${DATA:-/usr/share/datasets/fashion-mnist}
MPIRUN=${MPIRUN:-mpirun}
"$K" --version | grep -q "^MPI: [A-Z]" ||
  { echo "$K was built without MPI (make mpi)"; exit 1; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
OVER=""
"$MPIRUN" --version 2>/dev/null | grep -q "Open MPI\|OpenRTE" && OVER="--oversubscribe"
OUT=bench/results/mpi
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
NETS="$W/nets.tsv"
: >"$NETS"

# run NP ARCH FAMILY N [extra flags]: prints "examples/s comm%"
run() {
  local np=$1 arch=$2 fam=$3 n=$4
  shift 4
  rm -f "$W/log.csv"
  "$MPIRUN" $OVER -np "$np" "$K" train --data "$D" --arch "$arch" --family "$fam" \
    --limit-train "$n" --limit-test 100 --batch 100 --epochs 1 --samples 0 --threads 1 \
    --fixed-threads --seed 1 --progress none --log "$W/log.csv" --save "$W/ck.st" "$@" \
    >"$W/out" 2>&1 || { echo "failed"; tail -3 "$W/out" >&2; return; }
  local secs comm
  secs=$(awk -F, 'NR == 2 {print $3}' "$W/log.csv")
  comm=$(grep -o "([0-9.]*%) in sums" "$W/out" | tr -d '(%)' | awk '{print $1}')
  awk -v n="$n" -v s="$secs" -v c="${comm:-0}" 'BEGIN {printf "%.0f %.0f%%\n", n / s, c}'
}

# elements of the parameter views of a checkpoint (the gradient block less its alignment gaps)
grad_elements() {
  python3 - "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
h.pop("__metadata__", None)
n = 0
for k, v in h.items():
    if not k.startswith(("optim.", "kfac.")):
        c = 1
        for d in v["shape"]:
            c *= d
        n += c
print(n)
PY
}

{
  echo "kronvi data-parallel scaling: $("$K" --version | tr '\n' ' ')"
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(uptime | sed 's/.*load/load/')"
  echo
  echo "Examples per second of one training epoch (evaluation excluded), global batch 100, one"
  echo "thread per process; in parentheses the share of rank 0's step time spent in the sums."
  echo
  echo "| net | family | images | P = 1 | P = 2 | P = 2, --overlap on | speed-up |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$OUT/scaling.txt"
for spec in "MLP 784-300-300-300-10 mn 6000" "MLP 784-300-300-300-10 diag 6000" \
  "CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 mn 3000" \
  "CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10 diag 3000" \
  "VGG 1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10 mn 1000" \
  "VGG 1-10-10-10-mp-20-20-20-mp-40-40-40-mp-20-20-20-mp-flatten-10 diag 1000"; do
  read -r name arch fam n <<<"$spec"
  [ "$QUICK" = 1 ] && n=$((n / 10))
  r1=$(run 1 "$arch" "$fam" "$n")
  elems=$(grad_elements "$W/ck.st")
  r2=$(run 2 "$arch" "$fam" "$n")
  r2o=$(run 2 "$arch" "$fam" "$n" --overlap on)
  e1=${r1%% *}
  e2=${r2%% *}
  printf "%s\t%s\t%s\t%s\n" "$name" "$fam" "$elems" "$(awk -v e="$e1" 'BEGIN {print 1 / e}')" >>"$NETS"
  printf "| %s | %s | %s | %s | %s (%s) | %s (%s) | %s |\n" "$name" "$fam" "$n" "$e1" "$e2" \
    "${r2#* }" "${r2o%% *}" "${r2o#* }" "$(awk -v a="$e1" -v b="$e2" 'BEGIN {printf "%.2fx", b / a}')" |
    tee -a "$OUT/scaling.txt"
done
{
  echo
  echo "Communication model (bench/comm_model.py), gradient sizes of these nets and the P = 1"
  echo "seconds per example measured above:"
  echo
  python3 bench/comm_model.py "$NETS" --bandwidth 25 --latency 10 --ranks 8,64 --batch 100
} | tee -a "$OUT/scaling.txt"
