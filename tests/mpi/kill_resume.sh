#!/usr/bin/env bash
# A process that dies makes a data-parallel run fail cleanly, and the last checkpoint continues it
# exactly (docs/distributed.md, "Failures"). `mpirun -np 2 kronvi train` with the test hook
# KRONVI_TEST_DIE_AT_STEP=120 (rank 1 kills itself with SIGKILL after step 120, in the middle of
# epoch 2 of 80 steps): mpirun exits non-zero, the checkpoint is the one of epoch 1, complete
# (it loads; no temporary file is left), and resuming it with -np 2 gives byte-identical tensors
# (parameters and optimizer state) to the uninterrupted -np 2 run, with one process (no
# mpirun) the same parameters to float rounding.
# usage: kill_resume.sh KRONVI TMPDIR [MPIEXEC]
set -u
K=$1
T=$2
MPIRUN=${3:-mpirun}
# shellcheck source=common.bash
. "$(dirname "$0")/common.bash"
epoch_of() {
  python3 -c "import json,struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; print(json.loads(json.loads(b[8:8+n])['__metadata__']['kronvi'])['state']['epoch'])" "$1"
}

F="--data $D --arch 784-100-10 --family mn --limit-train 4000 --limit-test 200 --batch 50 --samples 1 --epochs 3 --threads 1 --progress none"
"$MPIRUN" $OVER -np 2 "$K" train $F --save "$T/a.st" >"$T/a.out" 2>&1 || { bad "the uninterrupted run failed"; tail "$T/a.out"; }
KRONVI_TEST_DIE_AT_STEP=120 "$MPIRUN" $OVER -np 2 "$K" train $F --save "$T/b.st" >"$T/b.out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then ok "mpirun exits with status $rc when rank 1 dies"; else bad "mpirun exited 0"; fi
grep -q "rank 1 kills itself after step 120" "$T/b.out" || bad "the test hook did not run"
if [ -f "$T/b.st" ] && [ "$(epoch_of "$T/b.st")" = 1 ] && "$K" report "$T/b.st" >/dev/null 2>&1 &&
  ! ls "$T"/b.st.tmp* >/dev/null 2>&1; then
  ok "the checkpoint of epoch 1 is intact (it loads), no partial file"
else
  bad "checkpoint after the failure: $(ls "$T")"
fi
cp "$T/b.st" "$T/r2.st" && cp "$T/b.st" "$T/r1.st"
if "$MPIRUN" $OVER -np 2 "$K" train --data "$D" --resume "$T/r2.st" --threads 1 --progress none \
    >"$T/r2.out" 2>&1 && python3 "$HERE/../cli/same_tensors.py" "$T/a.st" "$T/r2.st"; then
  ok "resumed with -np 2: the uninterrupted run's tensors, byte for byte"
else
  bad "resume with -np 2"
  tail -n 5 "$T/r2.out"
fi
if "$K" train --data "$D" --resume "$T/r1.st" --threads 1 --progress none >"$T/r1.out" 2>&1 &&
  r=$(python3 "$HERE/rel_diff.py" "$T/a.st" "$T/r1.st" 1e-3); then
  ok "resumed with one process: $r"
else
  bad "resume with one process: ${r:-}"
  tail -n 5 "$T/r1.out"
fi
echo "kill_resume: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
