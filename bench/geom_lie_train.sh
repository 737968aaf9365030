#!/usr/bin/env bash
# lie-ngd (Kronecker product of lower-triangular Lie groups, Gauss-Newton curvature) against Adam
# and K-FAC on point networks of Fashion-MNIST: the MLP 784-300-300-300-10 and the CNN
# 1-10-mp-20-mp-40-mp-80-mp-flatten-10, the same epochs, batch, seed and one thread; lie-ngd at
# three learning rates a factor ~3 apart. Per-epoch CSV logs go to bench/results/geom/, then
# bench/geom_table.py prints epochs and seconds to a fixed test accuracy.
# usage: [MODEL=mlp|cnn] [EPOCHS=5] [TARGET=0.86] [ONLY=substring of the run names]
#   bash bench/geom_lie_train.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${DATA:-/usr/share/datasets/fashion-mnist}
MODEL=${MODEL:-mlp}
EPOCHS=${EPOCHS:-5}
TARGET=${TARGET:-0.86}
OUT=bench/results/geom
mkdir -p "$OUT"
if [ "$MODEL" = cnn ]; then
  ARCH=1-10-mp-20-mp-40-mp-80-mp-flatten-10
else
  ARCH=784-300-300-300-10
fi
runs=("adam-1e-3 --optimizer adam --lr 1e-3" "kfac-1e-2 --optimizer kfac --lr 1e-2")
for lr in 3e-3 1e-2 3e-2; do runs+=("lie-ngd-$lr --optimizer lie-ngd --lr $lr"); done
for r in "${runs[@]}"; do
  set -- $r
  name=$1
  shift
  case "$name" in *"${ONLY:-}"*) ;; *) continue ;; esac
  log="$OUT/$MODEL-point-$name.csv"
  rm -f "$log"
  "$K" train --data "$D" --arch "$ARCH" --family point --epochs "$EPOCHS" --batch 100 "$@" \
    --samples 0 --eval-every 0 --threads 1 --seed 1 --progress none --log "$log" \
    >"$OUT/$MODEL-point-$name.out" 2>&1
  echo "$MODEL $name: $(tail -1 "$log" | cut -d, -f1,3,11)"
done
python3 bench/geom_table.py "$OUT" "$MODEL-point" "$TARGET"
