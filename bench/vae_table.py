#!/usr/bin/env python3
"""Table 3 (paper §5.4) from the per-image CSVs of bench/vae_table3.sh.

For each |z| and encoder family: the test log-likelihood (IWAE) and ELBO in nats per image,
averaged over the seeds that finished (mean over images; standard error over images of the
seed-averaged per-image values). Then the paired per-image differences MN - DIAG, MV - MN and
MV - DIAG with their standard errors (the same images, so the image-to-image spread cancels),
and whether the paper's ordering DIAG < MN < MV holds.

  /usr/bin/python3 bench/vae_table.py runs/vae
"""
import csv
import math
import os
import sys

FAMS = ("diag", "mn", "mv")
LABEL = {"diag": "DIAG", "mn": "MN", "mv": "MV"}


def read(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [float(r["elbo"]) for r in rows], [float(r["ll"]) for r in rows]


def mean_se(v):
    n = len(v)
    m = sum(v) / n
    var = sum((x - m) ** 2 for x in v) / (n - 1) if n > 1 else 0.0
    return m, math.sqrt(var / n)


def load(d, z, fam):
    """Per-image values averaged over the finished seeds, and the seeds used."""
    elbo = ll = None
    seeds = []
    for s in (1, 2):
        p = os.path.join(d, f"vae-z{z}-{fam}-s{s}.per.csv")
        if not os.path.exists(p):
            continue
        e, l = read(p)
        if elbo is None:
            elbo, ll = [0.0] * len(e), [0.0] * len(l)
        elbo = [a + b for a, b in zip(elbo, e)]
        ll = [a + b for a, b in zip(ll, l)]
        seeds.append(s)
    if not seeds:
        return None
    k = len(seeds)
    return [x / k for x in elbo], [x / k for x in ll], seeds


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "runs/vae"
    print("| \\|z\\| | family | LL (nats) | ELBO (nats) | seeds |")
    print("|---|---|---|---|---|")
    got = {}
    for z in (40, 9):
        for fam in FAMS:
            r = load(d, z, fam)
            if r is None:
                print(f"| {z} | {LABEL[fam]} | (not run) | | |")
                continue
            got[(z, fam)] = r
            ml, sl = mean_se(r[1])
            me, se = mean_se(r[0])
            shape = {"mn": " (20x2)" if z == 40 else " (3x3)"}.get(fam, "")
            print(f"| {z} | {LABEL[fam]}{shape} | {ml:.2f} ± {sl:.2f} | {me:.2f} ± {se:.2f} | "
                  f"{','.join(map(str, r[2]))} |")
    print()
    print("Paired per-image differences (nats; mean ± standard error over the test images):")
    print()
    print("| \\|z\\| | difference | LL | ELBO |")
    print("|---|---|---|---|")
    for z in (40, 9):
        for a, b in (("mn", "diag"), ("mv", "mn"), ("mv", "diag")):
            if (z, a) not in got or (z, b) not in got:
                continue
            dl = [x - y for x, y in zip(got[(z, a)][1], got[(z, b)][1])]
            de = [x - y for x, y in zip(got[(z, a)][0], got[(z, b)][0])]
            ml, sl = mean_se(dl)
            me, se = mean_se(de)
            print(f"| {z} | {LABEL[a]} - {LABEL[b]} | {ml:+.3f} ± {sl:.3f} | "
                  f"{me:+.3f} ± {se:.3f} |")
    for z in (40, 9):
        if all((z, f) in got for f in FAMS):
            ll = [mean_se(got[(z, f)][1])[0] for f in FAMS]
            ok = ll[0] < ll[1] < ll[2]
            print(f"\n|z| = {z}: DIAG < MN < MV by LL {'holds' if ok else 'does not hold'} "
                  f"({', '.join(f'{LABEL[f]} {v:.2f}' for f, v in zip(FAMS, ll))})")


if __name__ == "__main__":
    main()
