"""Prints the tables of bench/geom_mlp.sh and bench/geom_lie_train.sh from their CSV logs.

usage: python3 bench/geom_table.py DIR PREFIX [TARGET_ACC]
  PREFIX mlp-mn: per optimizer and epoch, steps, cumulated seconds, the negative ELBO per example
  (the epoch's mean training objective), test accuracy (mean weights), accuracy after pruning
  and the fraction of weights pruned.
  Other prefixes (mlp-point, cnn-point): epochs and seconds to TARGET_ACC test accuracy and the
  best accuracy.
"""
import csv
import glob
import os
import sys


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    d, prefix = sys.argv[1], sys.argv[2]
    target = float(sys.argv[3]) if len(sys.argv) > 3 else 0.85
    logs = sorted(glob.glob(os.path.join(d, prefix + "-*.csv")))
    if prefix == "mlp-mn":
        print("| optimizer | epoch | steps | seconds | -ELBO / N | test acc | acc pruned | pruned |")
        print("|---|---|---|---|---|---|---|---|")
        for p in logs:
            name = os.path.basename(p)[len(prefix) + 1:-4]
            t = 0.0
            for r in rows(p):
                t += float(r["seconds"])
                print(f"| {name} | {r['epoch']} | {r['step']} | {t:.0f} | {float(r['train_loss']):.4f} "
                      f"| {float(r['test_acc_mean']):.4f} | {float(r['test_acc_pruned']):.4f} "
                      f"| {float(r['sparsity']):.3f} |")
        return
    print(f"| run | epochs to {target:.2f} | seconds to {target:.2f} | best test acc | epochs run |")
    print("|---|---|---|---|---|")
    for p in logs:
        name = os.path.basename(p)[len(prefix) + 1:-4]
        t, hit, best, n = 0.0, None, 0.0, 0
        for r in rows(p):
            t += float(r["seconds"])
            acc = float(r["test_acc_mean"])
            best, n = max(best, acc), int(r["epoch"])
            if hit is None and acc >= target:
                hit = (n, t)
        e, s = (str(hit[0]), f"{hit[1]:.0f}") if hit else ("-", "-")
        print(f"| {name} | {e} | {s} | {best:.4f} | {n} |")


if __name__ == "__main__":
    main()
