#!/bin/bash
# make install into a temporary PREFIX, then out-of-tree builds against it: the example via
# pkg-config and via CMake (find_package(kronvi)), statically via libkronvi.a, a program that
# links the single- and double-precision libraries together (shared and static), and the
# Python binding imported from the prefix.
# Usage: install.sh BUILD_DIR SOURCE_DIR TMP_DIR
set -euo pipefail
build=$1 src=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
echo "installed into $prefix: $(find "$prefix" -type f | wc -l) files"
source "$src/tests/api/build_example.bash"
build_example "$prefix" "$tmp"

# both precisions in one program, shared and static
cflags="-std=c11 -Wall -Wextra -Werror -O2"
cc $cflags -c "$src/tests/api/both.c" $(pkg-config --cflags kronvi) -o "$tmp/both_f32.o"
cc $cflags -DKVI_BOTH_F64 -c "$src/tests/api/both.c" \
  $(pkg-config --cflags kronvi_f64 | sed 's/-DKVI_DOUBLE=1//') -o "$tmp/both_f64.o"
cc "$tmp/both_f32.o" "$tmp/both_f64.o" $(pkg-config --libs kronvi kronvi_f64) -o "$tmp/both_shared"
LD_LIBRARY_PATH="$prefix/lib" "$tmp/both_shared"
cc "$tmp/both_f32.o" "$tmp/both_f64.o" "$prefix/lib/libkronvi.a" "$prefix/lib/libkronvi_f64.a" \
  $(pkg-config --static --libs-only-l kronvi | sed 's/-lkronvi\b//') -o "$tmp/both_static"
"$tmp/both_static"
if ldd "$tmp/both_static" | grep -q libkronvi; then
  echo "FAIL: both_static needs a shared libkronvi"
  exit 1
fi

# the Python binding from the prefix finds the prefix's library
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3 # Debian's, with python3-numpy
PYTHONPATH="$prefix/lib/python3/dist-packages" $py -c \
  'import kronvi; print("python:", kronvi.version(), "from", kronvi.library_path())' | sed "s|$tmp|TMP|"
echo "install: ok"
