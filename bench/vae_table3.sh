#!/usr/bin/env bash
# The runs behind the README's Table 3 (paper §5.4): a VAE on statically binarized
# Fashion-MNIST with |z| = 40 (MN 20x2) and |z| = 9 (MN 3x3), encoder families diag, mn and mv,
# seeds 1 and 2; 300 epochs at most with exponential KL annealing over the first 100 and early
# stopping (patience 50) on the validation ELBO; then the test ELBO and the importance-weighted
# log-likelihood with k = 5000 samples, per image, and the table (bench/vae_table.py).
# Every run checkpoints each epoch and resumes where it stopped: run the script again to
# continue. One thread per run; RUNS runs side by side (default 1). Several copies of the script
# may run at once (e.g. one with REVERSE=1, which takes the runs from the end of the list): each
# run is claimed by a lock directory holding the claiming process's id, and a lock whose process
# is gone is taken over.
#   bash bench/vae_table3.sh            (KRONVI=build/kronvi OUT=runs/vae K=5000 RUNS=1 REVERSE=0)
set -eu
cd "$(dirname "$0")/.."
KR=${KRONVI:-build/kronvi}
D=${FASHION:-/usr/share/datasets/fashion-mnist}
O=${OUT:-runs/vae}
K=${K:-5000}
EPOCHS=${EPOCHS:-300}
RUNS=${RUNS:-1}
REVERSE=${REVERSE:-0}
mkdir -p "$O"
[ -f "$O/bfm/t10k-images-idx3-ubyte.gz" ] || "$KR" vae binarize --data "$D" --out "$O/bfm" --seed 1

# shellcheck source=bench/runs_lib.bash
. bench/runs_lib.bash

one() { # name family latent shape seed
  local n=$1 f=$2 z=$3 sh=$4 s=$5 mn=()
  [ "$f" = mn ] && mn=(--mn-shape "$sh")
  [ -f "$O/$n.per.csv" ] && return 0
  claim "$O/$n.lock" || return 0
  if [ ! -f "$O/$n.trained" ]; then
    local res=()
    [ -f "$O/$n.st" ] && res=(--resume "$O/$n.st")
    "$KR" vae train --data "$O/bfm" --family "$f" --latent "$z" "${mn[@]}" --epochs "$EPOCHS" \
      --kl-anneal-epochs 100 --patience 50 --seed "$s" --threads 1 --fixed-threads \
      --progress lines --save "$O/$n.st" --log "$O/$n.csv" "${res[@]}" >>"$O/$n.out" 2>&1
    touch "$O/$n.trained"
  fi
  if [ ! -f "$O/$n.per.csv" ]; then
    "$KR" vae eval "$O/$n.st" --data "$O/bfm" --k "$K" --threads 1 --progress lines \
      --per-image "$O/$n.per.tmp" >"$O/$n.eval" 2>&1
    mv "$O/$n.per.tmp" "$O/$n.per.csv"
  fi
  rm -rf "$O/$n.lock"
}

jobs_list=()
for s in 1 2; do
  for z in 40 9; do
    sh=$([ "$z" = 40 ] && echo 20x2 || echo 3x3)
    for f in diag mn mv; do jobs_list+=("vae-z$z-$f-s$s $f $z $sh $s"); done
  done
done
run_list one "$RUNS" "$REVERSE" "${jobs_list[@]}"
/usr/bin/python3 bench/vae_table.py "$O"
