#!/bin/bash
# The Debian package: CPack builds it from the build directory; its control fields and
# contents are checked, it is extracted with dpkg-deb -x and the example is built against the
# extracted tree (pkg-config, static, CMake). With KRONVI_TEST_APT_INSTALL=1 (root) it is also
# installed with apt-get install ./kronvi_*.deb, used from the system paths and removed.
# Usage: deb.sh BUILD_DIR SOURCE_DIR TMP_DIR
set -euo pipefail
build=$1 src=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
if ! (cd "$build" && cpack -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1); then
  cat "$tmp/cpack.log"
  exit 1
fi
deb=$(ls "$tmp"/pkg/kronvi_*.deb)
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) kB"
dpkg-deb -I "$deb" | grep -E "^ (Package|Version|Architecture|Depends):"
dpkg-deb -c "$deb" | awk '{print $6}' >"$tmp/contents"
for f in usr/bin/kronvi usr/include/kronvi/kronvi.h usr/include/kronvi/types.h \
  usr/lib/libkronvi.so.0 usr/lib/libkronvi.so usr/lib/libkronvi.a usr/lib/libkronvi_f64.so.0 \
  usr/lib/libkronvi_f64.a usr/lib/pkgconfig/kronvi.pc usr/lib/pkgconfig/kronvi_f64.pc \
  usr/lib/cmake/kronvi/kronviConfig.cmake usr/lib/python3/dist-packages/kronvi/__init__.py; do
  grep -qx "\./$f" "$tmp/contents" || { echo "FAIL: $f is not in the package"; exit 1; }
done
if grep -q "include/kronvi/core.h\|__pycache__" "$tmp/contents"; then
  echo "FAIL: the package holds internal headers or Python caches"
  exit 1
fi
dpkg-deb -e "$deb" "$tmp/control"
grep -qs ldconfig "$tmp/control/triggers" "$tmp/control/postinst" || { echo "FAIL: ldconfig is not run"; exit 1; }
echo "contents: $(wc -l <"$tmp/contents") entries, the libraries, headers, pkg-config, CMake and Python files"

dpkg-deb -x "$deb" "$tmp/root"
source "$src/tests/api/build_example.bash"
build_example "$tmp/root/usr" "$tmp"

if [ "${KRONVI_TEST_APT_INSTALL:-0}" = 1 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; exit 1; }
  trap 'apt-get purge -y -qq kronvi >/dev/null 2>&1' EXIT
  unset PKG_CONFIG_PATH
  cc -std=c11 -Wall -O2 "$src/examples/train_predict.c" $(pkg-config --cflags --libs kronvi) -lm \
    -o "$tmp/ex_system"
  (cd "$tmp" && ./ex_system - sys.safetensors | tail -n 2)
  cmake -S "$src/examples" -B "$tmp/ex_system_cmake" >/dev/null && cmake --build "$tmp/ex_system_cmake" >/dev/null
  (cd "$tmp" && ./ex_system_cmake/train_predict - sys2.safetensors | tail -n 1)
  (cd "$tmp" && /usr/bin/python3 -c 'import kronvi; print("python:", kronvi.version(), kronvi.library_path())')
  kronvi --version | head -n 1
  echo "apt-get install ./$(basename "$deb"): ok"
fi
echo "deb: ok"
