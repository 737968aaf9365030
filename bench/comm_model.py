#!/usr/bin/env python3
"""comm_model.py NETS.tsv [--bandwidth GBIT] [--latency US] [--ranks 8,64] [--batch B]

The communication cost of one data-parallel step of kronvi train, as a computation with its
assumptions stated (docs/distributed.md, "Communication model"), not a measurement.

NETS.tsv: one line per network, tab-separated: name, family, gradient elements n (float32; the
parameter block's views, from a checkpoint), seconds of compute per example with one thread at
P = 1 (measured by bench/mpi_scaling.sh). What one step sums over the processes: the gradient
(4 n bytes) and two doubles (loss, correct rows). Per rank and step:

  bytes sent           2 (P-1)/P * 4n                (kronvi's rank-ordered sum and a ring
                                                     all-reduce alike: a reduce-scatter and an
                                                     all-gather, each moving (P-1)/P of the buffer)
  ring all-reduce      2 (P-1)/P * 4n / BW + 2 (P-1) * alpha
  tree all-reduce      2 log2(P) * (4n / BW + alpha)  (binomial reduce, then broadcast)

with BW the link bandwidth per rank and alpha the latency per message. Compute per step at P
ranks: B * t_example / P (strong scaling: the global batch B is split) or B * t_example (weak
scaling: B per rank). Examples per second: batch / (compute + comm) without overlap,
batch / max(compute, comm) with a perfect overlap of the communication with the backward;
efficiency: against P times the one-rank speed. Standard library only."""
import math
import sys


def arg(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    bw_gbit = float(arg("--bandwidth", "25"))
    alpha = float(arg("--latency", "10")) * 1e-6
    ranks = [int(p) for p in arg("--ranks", "8,64").split(",")]
    B = int(arg("--batch", "100"))
    bw = bw_gbit * 1e9 / 8  # bytes per second
    nets = []
    for line in open(sys.argv[1]):
        if line.strip() and not line.startswith("#"):
            name, fam, n, t = line.split("\t")
            nets.append((name, fam, int(n), float(t)))
    print(f"Assumptions: {bw_gbit:g} Gb/s per rank ({bw / 1e9:.3g} GB/s) full duplex, "
          f"{alpha * 1e6:g} us latency per message, float32 gradients, one thread per rank "
          f"computing as fast as one thread here, no contention and no other traffic; the sum "
          f"takes the faster of ring and tree.")
    for weak in (False, True):
        print()
        if weak:
            print(f"Weak scaling: {B} examples per rank, a global batch of {B} P.")
        else:
            print(f"Strong scaling: a global batch of {B}, split over the P ranks.")
        print()
        print("| net | family | gradient (MB) | P | sent per rank and step (MB) | ring (ms) | "
              "tree (ms) | compute per step (ms) | ex/s no overlap | ex/s full overlap | "
              "efficiency |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, fam, n, t in nets:
            S = 4.0 * n
            for P in ranks:
                sent = 2 * (P - 1) / P * S
                ring = 2 * (P - 1) / P * S / bw + 2 * (P - 1) * alpha
                tree = 2 * math.log2(P) * (S / bw + alpha)
                comm = min(ring, tree)
                batch = B * P if weak else B
                comp = batch * t / P
                no_ov = batch / (comp + comm)
                full = batch / max(comp, comm)
                eff = no_ov / (P / t)  # against P times the one-rank speed 1/t
                print(f"| {name} | {fam} | {S / 1e6:.2f} | {P} | {sent / 1e6:.2f} | "
                      f"{ring * 1e3:.2f} | {tree * 1e3:.2f} | {comp * 1e3:.2f} | {no_ov:,.0f} | "
                      f"{full:,.0f} | {eff:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
