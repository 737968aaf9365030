#!/usr/bin/python3
"""The per-run summary of `bench/paper_runs.sh` logs (`kronvi train --log` CSVs) as a markdown
table: epochs done, the last epoch's test accuracy (mean weights and pruned), the best test
accuracy and its epoch, the ELBO per training example with the full KL weight, the sparsity, and
the wall time (the sum of the epochs' seconds, which include any time the run was paused).

  paper_table.py [--train N] [--epoch E] LABEL=LOG.csv [LABEL=LOG.csv ...]

--epoch E reports epoch E of every run (the runs compared at the same point) instead of each
run's last; the best accuracy and the wall time then count epochs 1..E.

The ELBO per example is -(train_loss + (1 - kl_beta) kl / N) of the last epoch (train_loss is the
epoch's mean of nll + kl_beta kl / N; N = --train, default 60000), as bench/figures.py draws it.
"""
import argparse
import csv
import sys


def summary(path, n_train, epoch):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if epoch:
        rows = [r for r in rows if int(r["epoch"]) <= epoch]
        if not rows or int(rows[-1]["epoch"]) != epoch:
            sys.exit(f"{path}: epoch {epoch} is not logged")
    if not rows:
        sys.exit(f"{path}: no epochs logged")
    last = rows[-1]
    acc = [float(r["test_acc_mean"]) for r in rows]
    best = max(range(len(acc)), key=lambda i: acc[i])
    beta, kl = float(last["kl_beta"]), float(last["kl"])
    elbo = -(float(last["train_loss"]) + (1 - beta) * kl / n_train)
    hours = sum(float(r["seconds"]) for r in rows) / 3600
    return (int(last["epoch"]), float(last["test_acc_mean"]), float(last["test_acc_pruned"]),
            acc[best], int(rows[best]["epoch"]), elbo, float(last["sparsity"]), hours)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("runs", nargs="+", metavar="LABEL=LOG.csv")
    a = ap.parse_args()
    print("| run | epochs | test acc. (mean) | test acc. (pruned) | best test acc. (epoch) "
          "| ELBO / N | weights pruned | wall hours |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in a.runs:
        if "=" not in spec:
            sys.exit(f"'{spec}': expected LABEL=LOG.csv")
        label, path = spec.split("=", 1)
        ep, acc, pacc, bacc, bep, elbo, sp, h = summary(path, a.train, a.epoch)
        print(f"| {label} | {ep} | {100 * acc:.2f}% | {100 * pacc:.2f}% | {100 * bacc:.2f}% ({bep}) "
              f"| {elbo:.3f} | {100 * sp:.1f}% | {h:.1f} |")


if __name__ == "__main__":
    main()
