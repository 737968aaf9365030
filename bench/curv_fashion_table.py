"""Tables of the Fashion-MNIST solver runs (bench/curv_fashion.sh): per optimizer and epoch the
training loss, the test accuracy and the cumulative training seconds, and the final epoch side by
side. usage: python3 bench/curv_fashion_table.py DIR (reads DIR/fashion_*.csv)."""
import csv
import glob
import os
import sys

ORDER = ["adam-b100", "adam-b1000", "lbfgs", "lm", "hf", "proximal"]


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    t = 0.0
    out = []
    for r in rows:
        t += float(r["seconds"])
        out.append((int(r["epoch"]), float(r["train_loss"]), float(r["test_acc_mean"]), t))
    return out


def main(d):
    runs = {}
    for p in glob.glob(os.path.join(d, "fashion_*.csv")):
        runs[os.path.basename(p)[8:-4]] = load(p)
    names = [n for n in ORDER if n in runs] + sorted(n for n in runs if n not in ORDER)
    print("Final epoch (same data passes for all):\n")
    print("| optimizer | epochs | training loss | test accuracy | training seconds |")
    print("|---|---|---|---|---|")
    for n in names:
        e, loss, acc, t = runs[n][-1]
        print(f"| {n} | {e} | {loss:.4f} | {acc:.4f} | {t:.1f} |")
    print("\nPer epoch: training loss / test accuracy / cumulative seconds\n")
    epochs = max(len(r) for r in runs.values())
    print("| epoch | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i in range(epochs):
        cells = []
        for n in names:
            r = runs[n]
            cells.append(f"{r[i][1]:.3f} / {r[i][2]:.4f} / {r[i][3]:.0f}s" if i < len(r) else "")
        print(f"| {i + 1} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/curv")
