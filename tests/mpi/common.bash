# Shared set-up of the tests/mpi scripts (sourced, not a test: the .bash suffix keeps it out of
# CMake's tests/mpi/*.sh glob). Expects K (kronvi), T (scratch directory) and MPIRUN; sets D (the
# Fashion-MNIST directory), OVER (--oversubscribe for Open MPI), HERE, the pass / fail counters
# and ok / bad, and lets Open MPI run as root.
D=${KRONVI_FASHION:-/usr/share/datasets/fashion-mnist}
rm -rf "$T" && mkdir -p "$T"
[ -f "$D/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not found in $D"; exit 1; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
OVER=""
"$MPIRUN" --version 2>/dev/null | grep -q "Open MPI\|OpenRTE" && OVER="--oversubscribe"
HERE=$(dirname "$0")
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
