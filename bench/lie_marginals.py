"""Plots the first 8 marginals of the 80-dimensional Student-t mixture and of its fit by a mixture
of structured Gaussians (the CSV of `bench_lie mixture`) to a PNG.

usage: /usr/bin/python3 bench/lie_marginals.py [CSV] [PNG]
  defaults: bench/results/geom/mixture80.csv, bench/results/geom/mixture80.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/geom/mixture80.csv"
    out = sys.argv[2] if len(sys.argv) > 2 else src[:-4] + ".png"
    dims = {}
    with open(src) as f:
        for r in csv.DictReader(f):
            d = dims.setdefault(int(r["dim"]), ([], [], []))
            d[0].append(float(r["x"]))
            d[1].append(float(r["target"]))
            d[2].append(float(r["fit"]))
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    for a, ax in zip(sorted(dims), axes.flat):
        x, p, q = dims[a]
        ax.plot(x, p, "k-", lw=1.5, label="target (t mixture)")
        ax.plot(x, q, "r--", lw=1.5, label="fit (10 Gaussians, B up(5))")
        ax.set_title(f"coordinate {a + 1}")
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("80-d Student-t mixture: marginals of the target and of the structured NGD fit")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
