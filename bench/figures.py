#!/usr/bin/python3
"""The paper's Figures 1-5 from the per-epoch CSV logs of `kronvi train --log`: Figures 1-3
(sparse Bayesian MLP on MNIST and Fashion-MNIST, CNN on Fashion-MNIST: test accuracy and
compression against epochs, one curve per posterior family), Figure 4 (the VGG-like net with one
learned prior variance per layer: the ELBO per example and the test accuracy against epochs) and
Figure 5 (the VGG-like net with group ARD: test accuracy and compression).

  figures.py --out FIG.png [--title TEXT] [--figure 1|2|3|4|5] [--accuracy mean|pruned|bma]
             [--train N] LABEL=LOG.csv [LABEL=LOG.csv ...]

Figure 4's left panel is the ELBO per training example with the full KL weight,
-(train_loss + (1 - kl_beta) kl / N): train_loss is the epoch's mean of nll + kl_beta kl / N and
kl the last step's KL, so during annealing the curve is an estimate; N (--train, default 60000)
is the number of training examples.

Each LABEL=LOG.csv is one curve (e.g. DIAG=runs/fm-diag.csv MN=runs/fm-mn.csv). The left panel is
the test accuracy of the epoch (column test_acc_mean: the posterior-mean network; --accuracy
pruned: test_acc_pruned, after dropping the weights with log alpha above the threshold; bma:
test_acc_bma, only in the epochs that computed it), the right panel the compression ratio
total / kept weights = 1 / (1 - sparsity) on a log scale. --figure N only sets the paper's title
for that figure. The drawing uses matplotlib's Agg backend (no display needed; Debian
python3-matplotlib).
"""
import argparse
import csv
import math
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {
    1: "Figure 1: sparse fully-connected network on MNIST",
    2: "Figure 2: sparse fully-connected network on Fashion-MNIST",
    3: "Figure 3: sparse convolutional network on Fashion-MNIST",
    4: "Figure 4: Bayesian VGG-like network on Fashion-MNIST (32x32), one prior variance per layer",
    5: "Figure 5: VGG-like network with group ARD on Fashion-MNIST (32x32), horizontal flips",
}
COLUMNS = {"mean": "test_acc_mean", "pruned": "test_acc_pruned", "bma": "test_acc_bma"}


def read_log(path, acc_col):
    """epochs, accuracies, compression ratios of one `kronvi train --log` file."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"epoch", "sparsity", acc_col}
    if not rows or not need <= set(rows[0]):
        missing = sorted(need - set(rows[0])) if rows else sorted(need)
        sys.exit(f"{path}: not a kronvi train --log file (missing columns: {', '.join(missing)})")
    ep, acc, comp = [], [], []
    for r in rows:
        if r[acc_col] == "":
            continue  # BMA columns are empty in the epochs without a test BMA
        s = float(r["sparsity"])
        ep.append(int(r["epoch"]))
        acc.append(float(r[acc_col]))
        comp.append(1.0 / (1.0 - s) if s < 1 else math.inf)
    if not ep:
        sys.exit(f"{path}: no epoch has a value in column {acc_col}")
    return ep, acc, comp


def read_elbo(path, n_train):
    """epochs and ELBO per training example (full KL weight) of one log file."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"epoch", "train_loss", "kl_beta", "kl"}
    if not rows or not need <= set(rows[0]):
        sys.exit(f"{path}: not a kronvi train --log file (needs {', '.join(sorted(need))})")
    ep = [int(r["epoch"]) for r in rows]
    elbo = [-(float(r["train_loss"]) + (1 - float(r["kl_beta"])) * float(r["kl"]) / n_train)
            for r in rows]
    return ep, elbo


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the PNG file to write")
    ap.add_argument("--title", help="the figure's title (default: the paper's, with --figure)")
    ap.add_argument("--figure", type=int, choices=sorted(TITLES), help="the paper's figure number")
    ap.add_argument("--accuracy", choices=sorted(COLUMNS), default="mean")
    ap.add_argument("--train", type=int, default=60000, help="training examples (Figure 4)")
    ap.add_argument("curves", nargs="+", metavar="LABEL=LOG.csv")
    a = ap.parse_args()
    curves = []
    for c in a.curves:
        label, sep, path = c.partition("=")
        if not sep or not label or not path:
            sys.exit(f"expected LABEL=LOG.csv, got '{c}'")
        curves.append((label, read_log(path, COLUMNS[a.accuracy])))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    acc_label = "test accuracy" + {"mean": "", "pruned": " (pruned)", "bma": " (BMA)"}[a.accuracy]
    if a.figure == 4:  # the ELBO left, the accuracy right
        for (label, (ep, acc, _)), c in zip(curves, a.curves):
            eep, elbo = read_elbo(c.partition("=")[2], a.train)
            ax1.plot(eep, elbo, marker="o" if len(eep) < 30 else None, ms=3, label=label)
            ax2.plot(ep, acc, marker="o" if len(ep) < 30 else None, ms=3, label=label)
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("ELBO per training example (nats)")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel(acc_label)
    else:
        for label, (ep, acc, comp) in curves:
            ax1.plot(ep, acc, marker="o" if len(ep) < 30 else None, ms=3, label=label)
            ax2.plot(ep, comp, marker="o" if len(ep) < 30 else None, ms=3, label=label)
        ax1.set_xlabel("epoch")
        ax1.set_ylabel(acc_label)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("compression (total / kept weights)")
        ax2.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax2.yaxis.set_major_formatter(plain)
        ax2.yaxis.set_minor_formatter(plain)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    title = a.title or TITLES.get(a.figure)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(f"wrote {a.out}: {', '.join(label for label, _ in curves)}")


if __name__ == "__main__":
    main()
