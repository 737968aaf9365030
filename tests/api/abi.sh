#!/bin/bash
# ABI check: the symbols that libkronvi.so, libkronvi.a and their double-precision twins define
# for other objects are exactly the stable API: the functions include/kronvi/kronvi.h declares
# KVI_EXPORT, which must also be the committed list tests/api/abi_symbols.txt (a change to the
# API is a change to that list). libkronvi_f64 exports the same names with kvid_ for kvi_.
# Usage: abi.sh BUILD_DIR SOURCE_DIR TMP_DIR
set -euo pipefail
build=$1 src=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
export LC_ALL=C
# the header's KVI_EXPORT functions
sed -n 's/^KVI_EXPORT [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$src/include/kronvi/kronvi.h" | sort >"$tmp/header"
fail=0
compare() { # name, expected file, actual file
  if ! diff -u "$2" "$3" >"$tmp/diff"; then
    echo "FAIL: $1 differs from $2 (- missing, + extra):"
    grep '^[-+][a-z_]' "$tmp/diff" || true
    fail=1
  else
    echo "ok: $1: $(wc -l <"$3") symbols"
  fi
}
compare "the header's KVI_EXPORT functions" "$src/tests/api/abi_symbols.txt" "$tmp/header"
for lib in kronvi kronvi_f64; do
  pfx=kvi_
  [ "$lib" = kronvi_f64 ] && pfx=kvid_
  sed "s/^kvi_/$pfx/" "$src/tests/api/abi_symbols.txt" >"$tmp/$lib.expected"
  so="$build/lib/lib$lib.so"
  readelf -d "$so" | grep -q "SONAME.*\[lib$lib.so.0\]" || { echo "FAIL: $so: SONAME is not lib$lib.so.0"; fail=1; }
  nm -D --defined-only "$so" | awk '{print $NF}' | sort >"$tmp/$lib.so.syms"
  compare "lib$lib.so (nm -D --defined-only)" "$tmp/$lib.expected" "$tmp/$lib.so.syms"
  nm -g --defined-only "$build/lib/lib$lib.a" | awk 'NF == 3 {print $3}' | sort >"$tmp/$lib.a.syms"
  compare "lib$lib.a (nm -g --defined-only)" "$tmp/$lib.expected" "$tmp/$lib.a.syms"
done
exit $fail
