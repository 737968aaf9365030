#!/usr/bin/env bash
# The walk-through "Adding a layer kind" of docs/architecture.md, followed literally: the ```c
# blocks that follow a line "<!-- toy-layer -->" are put together in order into one program (the
# kind, its registration, a network that uses it and a finite-difference check of its
# gradients), compiled against the static libraries of the build that made KRONVI, and run in
# single and in double precision. The blocks marked "<!-- toy-optimizer -->" (the walk-through
# "Adding an optimizer", a source file of src/optim/) must compile too.
# usage: doc_toy_layer.sh KRONVI TMPDIR   (KRONVI only locates the build: its directory holds
# the libkvi_<module>_<precision>.a libraries and CMakeCache.txt)
set -eu
K=$1
T=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$(cd "$(dirname "$K")" && pwd)
DOC=$ROOT/docs/architecture.md
rm -rf "$T" && mkdir -p "$T"

# The compiler and sanitizer flags of the build, so that an ASan/UBSan build links too.
CC=${CC:-}
SAN=""
if [ -f "$LIB/CMakeCache.txt" ]; then
  [ -n "$CC" ] || CC=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$LIB/CMakeCache.txt")
  if grep -q '^KRONVI_SANITIZE:BOOL=ON' "$LIB/CMakeCache.txt"; then
    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
  fi
fi
CC=${CC:-cc}

# extract MARKER OUT: the ```c blocks that follow a line "<!-- MARKER -->" (blank lines between
# allowed), in order, into OUT; prints the number of blocks.
extract() {
  awk -v m="<!-- $1 -->" '
    $0 == m { want = 1; next }
    inb && /^```[[:space:]]*$/ { inb = 0; next }
    inb { print; next }
    want && /^```c[[:space:]]*$/ { inb = 1; want = 0; n++; next }
    want && NF { want = 0 }
    END { print n + 0 > "/dev/stderr"; if (inb) exit 1 }' "$DOC" 2>"$2.count" >"$2"
  cat "$2.count"
}

nl=$(extract toy-layer "$T/scale.c")
no=$(extract toy-optimizer "$T/rmsprop.c")
echo "docs/architecture.md: $nl toy-layer blocks ($(wc -l <"$T/scale.c") lines), $no toy-optimizer blocks"
[ "$nl" -ge 1 ] && grep -q 'int main(void)' "$T/scale.c" || {
  echo "FAIL: no toy-layer program in docs/architecture.md"; exit 1; }
[ "$no" -ge 1 ] || { echo "FAIL: no toy-optimizer blocks in docs/architecture.md"; exit 1; }

# the project's warnings (CMakeLists.txt, KVI_WARN), as errors
WARN="-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
WARN="$WARN -Wno-unused-parameter -Werror"
SYS="-fopenmp -lopenblas -llapacke -lz -lm"
fail=0
ran=0
for P in f32 f64; do
  libs=""
  for m in models nn io prob core; do
    [ -f "$LIB/libkvi_${m}_$P.a" ] && libs="$libs $LIB/libkvi_${m}_$P.a"
  done
  if [ "$(echo $libs | wc -w)" -ne 5 ]; then
    echo "note: the $P libraries are not all in $LIB, skipped"
    continue
  fi
  def=""
  [ $P = f64 ] && def="-DKVI_DOUBLE=1"
  # shellcheck disable=SC2086
  if ! "$CC" $WARN -O1 $SAN $def -I"$ROOT/include" "$T/scale.c" $libs $SYS -o "$T/scale_$P"; then
    echo "FAIL: the toy-layer program does not compile ($P)"
    fail=1
    continue
  fi
  ran=$((ran + 1))
  OMP_NUM_THREADS=2 "$T/scale_$P" || fail=1
done
[ $ran -ge 1 ] || { echo "FAIL: no library to link in $LIB"; exit 1; }

# The optimizer walk-through: a translation unit of src/optim/ (syntax and types).
# shellcheck disable=SC2086
if "$CC" $WARN -fopenmp -I"$ROOT/include" -I"$ROOT/src" -c "$T/rmsprop.c" -o "$T/rmsprop.o"; then
  echo "PASS: the optimizer walk-through's src/optim/rmsprop.c compiles"
else
  echo "FAIL: the optimizer walk-through's code does not compile"
  fail=1
fi
exit $fail
