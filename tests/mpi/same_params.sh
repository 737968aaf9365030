#!/usr/bin/env bash
# Data-parallel training does not depend on the number of processes (docs/distributed.md): one
# epoch with `mpirun -np 2` and `-np 1` (same seed, same global batch) gives the same parameters to
# float rounding, for mn and diag, MLP (784-300-300-300-10, with a validation split evaluated on
# shards) and CNN (1-10-mp-20-mp-40-mp-80-mp-flatten-10, with --hflip). Printed: the max over the
# parameter tensors of max |a - b| / max |a| (tolerance 1e-3; a wrong noise row or a KL counted
# twice gives 1e-1 and more). Also: -np 1 gives byte-identical tensors to a run without mpirun,
# and -np 2 gives byte-identical tensors with and without --overlap (the sums' order is fixed);
# K-FAC and noisy K-FAC on a small CNN, -np 3 against -np 1.
# usage: same_params.sh KRONVI TMPDIR [MPIEXEC]
set -u
K=$1
T=$2
MPIRUN=${3:-mpirun}
# shellcheck source=common.bash
. "$(dirname "$0")/common.bash"
np() { local n=$1; shift; "$MPIRUN" $OVER -np "$n" "$K" train "$@" --threads 1 --progress none; }

# check NAME FLAGS [overlap] (NP: the processes of the parallel run, 2 by default)
check() {
  local name=$1 flags=$2 P=${NP:-2}
  if ! "$K" train $flags --threads 1 --progress none --save "$T/$name-s.st" >"$T/$name-s.out" 2>&1 ||
    ! np 1 $flags --save "$T/$name-1.st" >"$T/$name-1.out" 2>&1 ||
    ! np "$P" $flags --save "$T/$name-2.st" >"$T/$name-2.out" 2>&1; then
    bad "$name: a run failed"
    tail -n 5 "$T/$name-s.out" "$T/$name-1.out" "$T/$name-2.out"
    return
  fi
  if python3 "$HERE/../cli/same_tensors.py" "$T/$name-s.st" "$T/$name-1.st" >/dev/null; then
    ok "$name: -np 1 gives the same bytes as a run without mpirun"
  else
    bad "$name: -np 1 differs from a run without mpirun"
  fi
  local r
  r=$(python3 "$HERE/rel_diff.py" "$T/$name-1.st" "$T/$name-2.st" 1e-3)
  if [ $? -eq 0 ]; then ok "$name: -np $P vs -np 1: $r"; else bad "$name: -np $P vs -np 1: $r"; fi
  if [ "${3:-}" = overlap ]; then
    if np 2 $flags --overlap on --save "$T/$name-2o.st" >"$T/$name-2o.out" 2>&1 &&
      python3 "$HERE/../cli/same_tensors.py" "$T/$name-2.st" "$T/$name-2o.st" >/dev/null; then
      ok "$name: -np 2 with --overlap on gives the same bytes"
    else
      bad "$name: --overlap on differs"
    fi
  fi
}

MLP="--data $D --arch 784-300-300-300-10 --limit-train 2000 --limit-test 500 --val 200 --batch 100 --samples 2 --epochs 1 --seed 3"
CNN="--data $D --arch 1-10-mp-20-mp-40-mp-80-mp-flatten-10 --limit-train 1000 --limit-test 200 --batch 50 --samples 1 --epochs 1 --seed 3 --hflip"
check mlp-mn "$MLP --family mn" overlap
check mlp-diag "$MLP --family diag"
check cnn-mn "$CNN --family mn" overlap
check cnn-diag "$CNN --family diag"
# K-FAC's summed statistics and its refreshes spread over the processes (layer l on rank l mod P),
# on 3 processes, with a last batch of one row (two processes without rows)
SMALL="--data $D --arch 1-4-mp-8-mp-flatten-10 --limit-train 301 --limit-test 100 --batch 50 --samples 1 --epochs 1"
NP=3 check kfac "$SMALL --family point --optimizer kfac --inverse-every 2 --adapt-damping 3"
NP=3 check noisy-kfac "$SMALL --family mn --prior fixed:0.1 --optimizer noisy-kfac --inverse-every 2"
echo "same_params: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
