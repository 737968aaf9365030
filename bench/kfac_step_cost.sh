#!/usr/bin/env bash
# Cost of one training step of Adam, K-FAC and EKFAC on the point MLP and CNN of docs/kfac.md,
# alone on the machine, one thread, batch 100: the median over REPS runs of the seconds of one
# epoch of STEPS steps, divided by STEPS.
# usage: [REPS=3] [STEPS=60] [CORE=SkylakeX] bash bench/kfac_step_cost.sh
set -eu
cd "$(dirname "$0")/.."
K=${KRONVI:-build/kronvi}
D=${DATA:-/usr/share/datasets/fashion-mnist}
REPS=${REPS:-3}
STEPS=${STEPS:-60}
unset OPENBLAS_CORETYPE
[ -n "${CORE:-}" ] && export OPENBLAS_CORETYPE=$CORE
echo "load: $(uptime)"
echo "| net | optimizer | ms per step | / Adam |"
echo "|---|---|---|---|"
for spec in "mlp 784-300-300-300-10" "cnn 1-10-mp-20-mp-40-mp-80-mp-flatten-10"; do
  label=${spec%% *}
  net=${spec#* }
  adam=
  for opt in "adam --lr 1e-3" "kfac" "kfac --ekfac --inverse-every 100 --damping 0.1" "sgd --lr 0.03"; do
    times=()
    for r in $(seq 1 "$REPS"); do
      log=$(mktemp)
      "$K" train --data "$D" --arch "$net" --family point --limit-train $((STEPS * 100)) --epochs 1 \
        --batch 100 --samples 0 --eval-every 0 --threads 1 --progress none --log "$log" \
        --optimizer $opt >/dev/null 2>&1
      times+=("$(awk -F, 'NR==2 {print $3}' "$log")")
      rm -f "$log"
    done
    med=$(printf '%s\n' "${times[@]}" | sort -g | awk -v n="$REPS" 'NR==int((n+1)/2)')
    ms=$(awk -v t="$med" -v s="$STEPS" 'BEGIN {printf "%.1f", 1000 * t / s}')
    [ -z "$adam" ] && adam=$ms
    name=$(echo "$opt" | awk '{print ($2 == "--ekfac") ? "ekfac" : $1}')
    echo "| $label | $name | $ms | $(awk -v a="$ms" -v b="$adam" 'BEGIN {printf "%.1f", a / b}') |"
  done
done
