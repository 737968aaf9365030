#!/usr/bin/env bash
# Time to accuracy of SGD+momentum, Adam, K-FAC and EKFAC on point networks of Fashion-MNIST
# (docs/kfac.md): every optimizer gets the same search budget, three learning rates a factor ~3
# apart around its usual value, and the same epochs; the per-epoch CSV logs go to
# bench/results/kfac/, then bench/kfac_table.py prints the table.
# usage: MODEL=mlp|cnn [EPOCHS=20] [JOBS=2] [CORE=SkylakeX] bash bench/kfac_race.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${DATA:-/usr/share/datasets/fashion-mnist}
MODEL=${MODEL:-mlp}
EPOCHS=${EPOCHS:-20}
JOBS=${JOBS:-2}
OUT=bench/results/kfac
mkdir -p "$OUT"
unset OPENBLAS_CORETYPE
[ -n "${CORE:-}" ] && export OPENBLAS_CORETYPE=$CORE
if [ "$MODEL" = cnn ]; then
  ARCH=1-10-mp-20-mp-40-mp-80-mp-flatten-10
else
  ARCH=784-300-300-300-10
fi
runs=()
for lr in 0.03 0.1 0.3; do runs+=("sgd $lr --optimizer sgd --momentum 0.9"); done
for lr in 3e-4 1e-3 3e-3; do runs+=("adam $lr --optimizer adam"); done
for lr in 3e-3 1e-2 3e-2; do runs+=("kfac $lr --optimizer kfac"); done
for lr in 3e-3 1e-2 3e-2; do runs+=("ekfac $lr --optimizer kfac --ekfac --inverse-every 100 --damping 0.1"); done
run_one() {
  local name=$1 lr=$2
  shift 2
  local log="$OUT/$MODEL-$name-$lr.csv"
  [ -f "$log" ] && [ "$(($(wc -l <"$log") - 1))" -ge "$EPOCHS" ] && return 0
  "$K" train --data "$D" --arch "$ARCH" --family point --epochs "$EPOCHS" --batch 100 --lr "$lr" \
    "$@" --samples 0 --eval-every 0 --threads 1 --seed 1 --progress none --log "$log" \
    >"$OUT/$MODEL-$name-$lr.out" 2>&1
  echo "$MODEL $name lr $lr: $(tail -1 "$log" | cut -d, -f1,3,11)"
}
i=0
for r in "${runs[@]}"; do
  run_one $r &
  i=$((i + 1))
  if [ $((i % JOBS)) -eq 0 ]; then wait; fi
done
wait
python3 bench/kfac_table.py "$OUT" "$MODEL"
