#!/usr/bin/python3
"""The kronvi speed-acceptance model in PyTorch: the Fashion-MNIST MLP 784-300-300-300-10, ELU,
ARD prior, Adam (lr 1e-3), batch 100, single precision, for the families point / diag / mn /
mn-diag, with the same parameterization, initialization, local reparameterization and ARD KL as
kronvi (docs/benchmarks.md, docs/prob.md):

  point    y = x M + b
  diag     log-sigma parameterization; LRT: y = x M + b + sqrt((x*x) @ sigma^2) * eps
           KL = 1/2 sum log(1 + M^2 / sigma^2)
  mn       A = tril(A_raw, -1) + diag(exp(diag(A_raw))), B likewise;
           LRT: y = x M + b + ||x A||_row * (eps @ B^T)
           KL = 1/2 sum log(1 + M^2/(U_ii V_jj)) + 1/2 [m (sum log U_ii - log|U|)
                + n (sum log V_jj - log|V|)],  U_ii = ||A_i,:||^2, log|U| = 2 sum log A_ii
  mn-diag  MN plus sqrt((x*x) @ D) * eps2, D = exp(log_d);
           KL = 1/2 sum log(M^2 + U_ii V_jj + D_ij) - 1/2 LB, LB = nm logsumexp(ld1/nm, ld2/nm),
           ld1 = log|V (x) U| = 2 m sum log A_ii + 2 n sum log B_jj, ld2 = sum log D
           (the Minkowski lower bound on logdet, as kronvi's kvi_mndiag_kl_ard)

The loss of a step is mean cross-entropy + beta KL / N (beta = 1, N = 60000), as in kronvi's
trainer. Data are pre-loaded float32 tensors; a step gathers its batch with index_select from an
epoch permutation. Each layer builds its factors A, B once per step and uses them for both the
noise and the KL.

Like bench_epoch, every measurement runs in its own process (peak RSS per family; the parent does
not import torch) and families are interleaved over --reps repetitions. Threads: --threads N calls
torch.set_num_threads(N) in the child; OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS /
OPENBLAS_CORETYPE come from the environment (bench/run_speed.sh sweeps them). This torch (Debian
1.13, BLAS_INFO=generic) does its matrix products through libblas.so.3 = OpenBLAS (pthreads build),
whose thread count torch.set_num_threads does NOT set: only OPENBLAS_NUM_THREADS does.

  torch_mlp.py [--families LIST] [--threads N] [--steps S] [--warmup W] [--reps R] [--full]
               [--synthetic | --data DIR] [--foreach {0,1}] [--raw]
"""
import argparse
import gzip
import math
import os
import resource
import statistics
import subprocess
import sys
import time

FAMILIES = ("point", "diag", "mn", "mn-diag")


def load_idx(data_dir):
    """Fashion-MNIST IDX (gzip) straight into float32 / int64 tensors (one transient copy of the
    compressed file's bytes, no numpy intermediates)."""
    import torch

    def read(name, header, shape_of):
        with gzip.open(os.path.join(data_dir, name), "rb") as f:
            buf = bytearray(f.read())
        dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(shape_of)]
        raw = torch.frombuffer(buf, dtype=torch.uint8, offset=header)
        return raw, dims

    def images(name):
        raw, (n, r, c) = read(name, 16, 3)
        return raw.view(n, r * c).to(torch.float32).div_(255.0)

    def labels(name):
        raw, _ = read(name, 8, 1)
        return raw.to(torch.int64)

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def child(args):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    t_load = time.perf_counter()
    if args.synthetic:
        g = torch.Generator().manual_seed(7)
        X = torch.rand(60000, 784, generator=g)
        Y = torch.randint(0, 10, (60000,), generator=g)
        Xt = torch.rand(10000, 784, generator=g)  # held like kronvi holds its test set
        Yt = torch.randint(0, 10, (10000,), generator=g)
    else:
        X, Y, Xt, Yt = load_idx(args.data)
    t_load = time.perf_counter() - t_load
    family = args.child
    init_ls = -5.0

    def chol(raw):
        # lower-triangular factor with the diagonal stored as logs
        return torch.tril(raw, -1) + torch.diag(torch.exp(torch.diagonal(raw)))

    class Dense(nn.Module):
        def __init__(self, n, m):
            super().__init__()
            self.n, self.m = n, m
            self.M = nn.Parameter(torch.randn(n, m) / math.sqrt(n))  # N(0, 1/n): gain 1 (ELU)
            self.b = nn.Parameter(torch.zeros(m))
            ls = init_ls - (0.5 * math.log(2.0) if family == "mn-diag" else 0.0)
            if family == "diag":
                self.log_sigma = nn.Parameter(torch.full((n, m), ls))
            if family in ("mn", "mn-diag"):
                self.A = nn.Parameter(torch.diag(torch.full((n,), ls / 2)))
                self.B = nn.Parameter(torch.diag(torch.full((m,), ls / 2)))
            if family == "mn-diag":
                self.log_d = nn.Parameter(torch.full((n, m), 2 * ls))

        def forward(self, x):
            """Returns (sampled output, KL of this layer)."""
            mean = torch.addmm(self.b, x, self.M)
            if family == "point":
                return mean, None
            if family == "diag":
                var = torch.exp(2 * self.log_sigma)
                y = mean + torch.sqrt(torch.mm(x * x, var)) * torch.randn_like(mean)
                kl = 0.5 * torch.log1p(self.M * self.M / var).sum()
                return y, kl
            n, m = self.n, self.m
            A, B = chol(self.A), chol(self.B)
            s = torch.linalg.vector_norm(torch.mm(x, A), dim=1, keepdim=True)
            y = mean + s * torch.mm(torch.randn_like(mean), B.t())
            u, v = (A * A).sum(1), (B * B).sum(1)
            la, lb = torch.diagonal(self.A).sum(), torch.diagonal(self.B).sum()
            M2 = self.M * self.M
            if family == "mn":
                kl = 0.5 * torch.log1p(M2 / torch.outer(u, v)).sum() + 0.5 * (
                    m * (torch.log(u).sum() - 2 * la) + n * (torch.log(v).sum() - 2 * lb))
                return y, kl
            D = torch.exp(self.log_d)
            y = y + torch.sqrt(torch.mm(x * x, D)) * torch.randn_like(mean)
            N = float(n * m)
            ld1 = 2 * m * la + 2 * n * lb
            ld2 = self.log_d.sum()
            lbound = N * torch.logsumexp(torch.stack((ld1 / N, ld2 / N)), 0)
            kl = 0.5 * torch.log(M2 + torch.outer(u, v) + D).sum() - 0.5 * lbound
            return y, kl

    class Net(nn.Module):
        def __init__(self, sizes):
            super().__init__()
            self.layers = nn.ModuleList(Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

        def forward(self, x):
            kl = None
            for k, layer in enumerate(self.layers):
                x, k_ = layer(x)
                if k_ is not None:
                    kl = k_ if kl is None else kl + k_
                if k + 1 < len(self.layers):
                    x = F.elu(x)
            return x, kl

    sizes = [int(s) for s in args.arch.split("-")]
    net = Net(sizes)
    opt_kw = {}
    if args.foreach is not None:
        opt_kw["foreach"] = bool(args.foreach)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, **opt_kw)
    nparams = sum(p.numel() for p in net.parameters())
    Bsz, Ntrain, beta = args.batch, X.shape[0], 1.0
    kl_scale = beta / Ntrain
    nb = Ntrain // Bsz
    perm = torch.randperm(Ntrain)
    state = {"step": 0, "loss": 0.0}

    def step():
        i = state["step"] % nb
        if i == 0 and state["step"] > 0:
            perm.copy_(torch.randperm(Ntrain))
        idx = perm[i * Bsz:(i + 1) * Bsz]
        xb, yb = X.index_select(0, idx), Y.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        out, kl = net(xb)
        loss = F.cross_entropy(out, yb)
        if kl is not None:
            loss = loss + kl_scale * kl
        loss.backward()
        opt.step()
        state["step"] += 1
        return loss

    with torch.no_grad():  # KL at initialization: a cross-check against kronvi's formulas
        kl0 = net(X[:Bsz])[1]
        kl0 = float(kl0) if kl0 is not None else 0.0
    for _ in range(args.warmup):
        step()
    steps = nb if args.full else args.steps
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    s_step = (time.perf_counter() - t0) / steps
    lv = float(loss.detach())
    if not math.isfinite(lv):
        print(f"torch_mlp: {family}: loss is not finite", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    env = lambda k: os.environ.get(k, "(unset)")
    print(f"RESULT family={family} s_step={s_step:.6e} maxrss_kb={rss} params={nparams} "
          f"threads={args.threads} torch_threads={torch.get_num_threads()} "
          f"omp={env('OMP_NUM_THREADS')} openblas={env('OPENBLAS_NUM_THREADS')} "
          f"mkl={env('MKL_NUM_THREADS')} coretype={env('OPENBLAS_CORETYPE')} "
          f"steps={steps} load_s={t_load:.2f} kl_init={kl0:.6e} loss={lv:.4f} torch={torch.__version__}",
          flush=True)


def parent(args):
    fams = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in fams:
        if f not in FAMILIES:
            sys.exit(f"torch_mlp: unknown family {f!r} (expected {', '.join(FAMILIES)})")
    env = lambda k: os.environ.get(k, "(unset)")
    with open("/proc/loadavg") as fh:
        la = " ".join(fh.read().split()[:3])
    print(f"torch_mlp: PyTorch (python3-torch) MLP {args.arch}, ELU, ARD prior, Adam lr 1e-3, "
          f"batch {args.batch}, {'synthetic data' if args.synthetic else args.data}")
    print(f"torch.set_num_threads({args.threads}) | OMP_NUM_THREADS={env('OMP_NUM_THREADS')} | "
          f"OPENBLAS_NUM_THREADS={env('OPENBLAS_NUM_THREADS')} | "
          f"MKL_NUM_THREADS={env('MKL_NUM_THREADS')} | OPENBLAS_CORETYPE={env('OPENBLAS_CORETYPE')}"
          f" | {os.cpu_count()} CPUs | load average {la} (shared machine)")
    print(f"{'600 (full epoch)' if args.full else args.steps} timed steps after {args.warmup} "
          f"warm-up steps per process; {args.reps} processes per family, interleaved; "
          f"s/epoch = s/step x 600", flush=True)
    res = {f: [] for f in fams}
    me = os.path.abspath(__file__)
    for _ in range(args.reps):
        for f in fams:
            cmd = [sys.executable, me, "--child", f, "--threads", str(args.threads),
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--arch", args.arch, "--batch", str(args.batch)]
            cmd += ["--synthetic"] if args.synthetic else ["--data", args.data]
            if args.full:
                cmd.append("--full")
            if args.foreach is not None:
                cmd += ["--foreach", str(args.foreach)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            if p.returncode != 0 or not lines:
                sys.exit(f"torch_mlp: child for {f} failed (status {p.returncode})")
            if args.raw:
                print(lines[-1], flush=True)
            kv = dict(t.split("=", 1) for t in lines[-1].split()[1:])
            res[f].append((float(kv["s_step"]), int(kv["maxrss_kb"]) / 1024.0))
    diag = statistics.median(t for t, _ in res["diag"]) if "diag" in res else float("nan")
    print(f"\n{'family':<8} | {'s/step':>10} {'min':>10} {'max':>10} | {'s/epoch':>10} "
          f"{'vs diag':>10} | {'peak MB':>9}")
    for f in fams:
        ts = [t for t, _ in res[f]]
        med = statistics.median(ts)
        print(f"{f:<8} | {med:10.5f} {min(ts):10.5f} {max(ts):10.5f} | {med * 600:10.2f} "
              f"{med / diag:10.2f} | {max(r for _, r in res[f]):9.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps (default 100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    ap.add_argument("--reps", type=int, default=3, help="processes per family (default 3)")
    ap.add_argument("--full", action="store_true", help="time one full epoch (600 steps)")
    ap.add_argument("--synthetic", action="store_true", help="random data of the same shape")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--arch", default="784-300-300-300-10")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--foreach", type=int, choices=(0, 1), default=None,
                    help="Adam foreach implementation (default: torch's choice)")
    ap.add_argument("--raw", action="store_true", help="print the children's RESULT lines")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1 or args.steps < 1 or args.reps < 1 or args.warmup < 0:
        sys.exit("torch_mlp: threads, steps and reps must be positive")
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
