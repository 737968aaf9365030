#!/usr/bin/python3
"""The per-run summary of `bench/paper_runs.sh` logs (`kronvi train --log` CSVs) as a markdown
table: epochs done, the last epoch's test accuracy (mean weights and pruned), the best test
accuracy and its epoch, the ELBO per training example with the full KL weight, the sparsity, and
the wall time (the sum of the epochs' seconds, which include any time the run was paused).

  paper_table.py [--train N] [--epoch E] [--compare] LABEL=LOG.csv [LABEL=LOG.csv ...]
  paper_table.py --layers LABEL=FINAL.txt [LABEL=FINAL.txt ...]

--epoch E reports epoch E of every run (the runs compared at the same point) instead of each
run's last; the best accuracy and the wall time then count epochs 1..E.

--compare (two runs, A then B) also prints, over the epochs both logged: at how many B's ELBO and
test accuracy (mean weights) are above A's, the largest ELBO gap B - A and its epoch, the gap at
the last common epoch, and B's accuracy lead averaged over the last five common epochs.

--layers prints the paper's Tables 1 and 2 instead, from the per-layer sparsity report that
`kronvi train` prints after its last epoch (and `kronvi report`; saved as bench/results/paper/
*.final.txt): per run, weights left of all (free zeroing) and, per layer in the paper's
"A / W / %" form, the weights (thousands), rows (hundreds) and columns of each layer, all and
left, and the percentage dropped.

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


def per_epoch(path, n_train):
    """(ELBO per example, test accuracy) of every logged epoch, in order."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        beta, kl = float(r["kl_beta"]), float(r["kl"])
        out.append((-(float(r["train_loss"]) + (1 - beta) * kl / n_train), float(r["test_acc_mean"])))
    return out


def compare(la, pa, lb, pb, n_train):
    a, b = per_epoch(pa, n_train), per_epoch(pb, n_train)
    e = min(len(a), len(b))
    if e == 0:
        sys.exit("--compare: no common epochs")
    gaps = [b[i][0] - a[i][0] for i in range(e)]
    accd = [100 * (b[i][1] - a[i][1]) for i in range(e)]
    big = max(range(e), key=lambda i: gaps[i])
    last = accd[-5:]
    print(f"\n{lb} against {la} over {e} common epochs: ELBO above at {sum(g > 0 for g in gaps)}, "
          f"test accuracy above at {sum(d > 0 for d in accd)}; largest ELBO gap {gaps[big]:.3f} "
          f"(epoch {big + 1}), {gaps[-1]:.3f} at epoch {e}; accuracy lead over the last "
          f"{len(last)} common epochs {sum(last) / len(last):.2f} points")


def layer_lines(path):
    """The report's title line and its 'weights (k)', 'rows (100s)' and 'columns' lines, each
    split into the A, W and % sequences."""
    with open(path) as f:
        lines = f.read().splitlines()
    at = next((i for i, l in enumerate(lines) if "weights left of" in l), None)
    if at is None:
        sys.exit(f"{path}: no 'weights left of' line (a kronvi train / report sparsity report?)")
    title, out = lines[at], {}
    for l in lines[at + 1:]:  # the first report's lines: its per-layer table, then the three
        if "weights left of" in l:
            break
        for key in ("weights (k)", "rows (100s)", "columns"):
            if l.startswith(key) and key not in out:
                f = l[len(key):].split()
                if len(f) != 6 or f[0::2] != ["A", "W", "%"]:
                    sys.exit(f"{path}: cannot read the line '{l}'")
                out[key] = f[1::2]
    missing = [k for k in ("weights (k)", "rows (100s)", "columns") if k not in out]
    if missing:
        sys.exit(f"{path}: no '{missing[0]}' line")
    return title, out


def layers(specs):
    print("| run | what | all (A) | left (W) | dropped % |")
    print("|---|---|---|---|---|")
    for spec in specs:
        if "=" not in spec:
            sys.exit(f"'{spec}': expected LABEL=FINAL.txt")
        label, path = spec.split("=", 1)
        title, seqs = layer_lines(path)
        head = title[title.find("(") + 1:title.find(")")] if "(" in title else title
        print(f"| {label} | {head} | | | |")
        for key, what in (("weights (k)", "weights, thousands (free zeroing)"),
                          ("rows (100s)", "rows, hundreds (row-only)"),
                          ("columns", "columns (column-only)")):
            a, w, pct = seqs[key]
            print(f"| | {what} | {a} | {w} | {pct} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--layers", action="store_true",
                    help="Tables 1 and 2 from the runs' final sparsity reports")
    ap.add_argument("runs", nargs="+", metavar="LABEL=LOG.csv")
    a = ap.parse_args()
    if a.layers:
        layers(a.runs)
        return
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
    if a.compare:
        if len(a.runs) != 2:
            sys.exit("--compare needs exactly two runs")
        (la, pa), (lb, pb) = (spec.split("=", 1) for spec in a.runs)
        compare(la, pa, lb, pb, a.train)


if __name__ == "__main__":
    main()
