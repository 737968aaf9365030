#!/usr/bin/env bash
# Carries the unfinished runs of bench/paper_runs.sh from one machine to another through the
# repository, so that a run longer than one machine's lease still resumes exactly:
#   save      copies each unfinished run's last checkpoint, CSV log and output from runs/paper
#             into bench/results/paper/resume/ (the log cut to the checkpoint's epoch, so that
#             the resumed run appends no epoch twice), and removes the copies of finished runs
#   restore   copies them back into runs/paper where it has no checkpoint of that run yet;
#             `bash bench/paper_runs.sh` then continues each run with --resume
# A checkpoint holds the parameters and Adam's moments (12 bytes per parameter: 5 MB for the
# VGG-like MN+DIAG run, 17 MB for the x2-width MN run). The resumed run is bit-identical to an
# uninterrupted one when both machines use the same thread count, BLAS core and SIMD level
# (kronvi train prints them; bench/paper_runs.sh uses one thread).
#   bash bench/paper_resume.sh save|restore   (OUT=runs/paper)
set -eu
cd "$(dirname "$0")/.."
O=${OUT:-runs/paper}
R=bench/results/paper/resume

ckpt_epoch() { # the "epoch" counter in a checkpoint's header (JSON inside a JSON string)
  head -c 65536 "$1" | grep -ao '[{,]\\*"epoch\\*": *[0-9]*' | head -n 1 | grep -o '[0-9]*$'
}

save() {
  mkdir -p "$R"
  local c n e
  for c in "$O"/*.safetensors; do
    [ -e "$c" ] || continue
    n=$(basename "$c" .safetensors)
    case "$n" in *-small) continue ;; esac
    if [ -f "$O/$n.done" ]; then
      rm -f "$R/$n".*
      continue
    fi
    e=$(ckpt_epoch "$c") || { echo "paper_resume: $c: no epoch in its header" >&2; exit 1; }
    cp "$c" "$R/$n.safetensors.tmp" && mv "$R/$n.safetensors.tmp" "$R/$n.safetensors"
    # the log's header and its rows up to the checkpoint's epoch
    awk -F, -v e="$e" 'NR == 1 || $1 + 0 <= e' "$O/$n.csv" >"$R/$n.csv"
    cp "$O/$n.out" "$R/$n.out"
    echo "saved $n at epoch $e"
  done
}

restore() {
  mkdir -p "$O"
  local c n
  for c in "$R"/*.safetensors; do
    [ -e "$c" ] || continue
    n=$(basename "$c" .safetensors)
    if [ -f "$O/$n.safetensors" ]; then
      echo "kept $O/$n.safetensors (already there)"
      continue
    fi
    cp "$c" "$O/$n.safetensors"
    cp "$R/$n.csv" "$O/$n.csv"
    cp "$R/$n.out" "$O/$n.out"
    echo "restored $n at epoch $(ckpt_epoch "$c")"
  done
}

case "${1:-}" in
  save) save ;;
  restore) restore ;;
  *)
    echo "usage: bash bench/paper_resume.sh save|restore" >&2
    exit 2
    ;;
esac
