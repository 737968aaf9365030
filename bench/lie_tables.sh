#!/usr/bin/env bash
# The structured-NGD tables (docs/geom.md, README): bench_lie opt on Rosenbrock-200 and
# Dixon-Price-200 (each row its own run, under 3 minutes), the logistic-regression VI table and
# the 80-d mixture with its marginals plotted to PNG. Results go to bench/results/geom/.
# usage: [BUILD=build] [SECONDS_NGD=150] [SECONDS_SEARCH=60] bash bench/lie_tables.sh
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}/bench_lie
OUT=bench/results/geom
SN=${SECONDS_NGD:-150}
SS=${SECONDS_SEARCH:-60}
mkdir -p "$OUT"
{
  "$B" opt --problem dixon-price --seconds "$SS"
  for g in dense tril up5 diag; do
    "$B" opt --problem rosenbrock --method ngd --group "$g" --seconds "$SN" --no-header 1
  done
  "$B" opt --problem rosenbrock --method search --seconds "$SS" --no-header 1
} | tee "$OUT/lie-opt.md"
{
  "$B" logreg --part ref
  "$B" logreg --part table | tail -n +2
  "$B" logreg --part long | tail -n +2
} | tee "$OUT/lie-logreg.md"
"$B" mixture --out "$OUT/mixture80.csv" | tee "$OUT/lie-mixture.md"
/usr/bin/python3 bench/lie_marginals.py "$OUT/mixture80.csv" "$OUT/mixture80.png"
