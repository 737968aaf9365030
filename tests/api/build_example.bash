# build_example PREFIX TMP: builds examples/train_predict.c against the kronvi installed in
# PREFIX via pkg-config (shared and static) and via CMake, and runs each build on the synthetic
# data. Sourced by install.sh and deb.sh; sets PKG_CONFIG_PATH.
build_example() {
  local prefix=$1 tmp=$2 ex
  ex="$src/examples"
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  echo "pkg-config: kronvi $(pkg-config --modversion kronvi): $(pkg-config --cflags --libs kronvi | sed "s|$tmp|TMP|g")"
  cc -std=c11 -Wall -Wextra -Werror -O2 "$ex/train_predict.c" $(pkg-config --cflags --libs kronvi) -lm \
    -o "$tmp/ex_pkgconfig"
  (cd "$tmp" && LD_LIBRARY_PATH="$prefix/lib" ./ex_pkgconfig - pc.safetensors >ex_pkgconfig.out)
  tail -n 3 "$tmp/ex_pkgconfig.out"
  grep -q "the same" "$tmp/ex_pkgconfig.out"
  cc -std=c11 -O2 "$ex/train_predict.c" -I"$prefix/include" "$prefix/lib/libkronvi.a" \
    $(pkg-config --static --libs-only-l kronvi | sed 's/-lkronvi\b//') -o "$tmp/ex_static"
  (cd "$tmp" && ./ex_static - static.safetensors >ex_static.out)
  cmp "$tmp/ex_pkgconfig.out" <(sed 's/static.safetensors/pc.safetensors/' "$tmp/ex_static.out")
  echo "static build: the same output"
  cmake -S "$ex" -B "$tmp/ex_cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    >"$tmp/ex_cmake.log"
  cmake --build "$tmp/ex_cmake" >>"$tmp/ex_cmake.log"
  (cd "$tmp" && ./ex_cmake/train_predict - cm.safetensors >ex_cmake.out)
  cmp "$tmp/ex_pkgconfig.out" <(sed 's/cm.safetensors/pc.safetensors/' "$tmp/ex_cmake.out")
  echo "CMake build (find_package(kronvi)): the same output"
}
