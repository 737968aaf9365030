#!/usr/bin/env bash
# The structured-NGD benchmark's own targets (logistic regression, the 80-d Student-t mixture):
# their gradients and Hessians against central differences (bench_lie check, built next to
# kronvi).
# usage: bench_lie_check.sh KRONVI TMPDIR
set -u
B="$(dirname "$1")/bench_lie"
[ -x "$B" ] || { echo "bench_lie not built next to $1"; exit 1; }
"$B" check
