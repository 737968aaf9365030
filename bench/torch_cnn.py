#!/usr/bin/python3
"""The Fashion-MNIST CNN of the paper (section 5.1) in PyTorch, for kronvi's CNN speed table:
1-10-mp-20-mp-40-mp-80-mp-flatten-10 (3x3 convolutions, stride 1, same padding, ELU, 2x2
max-pooling), ARD prior, Adam lr 1e-3, batch 100, single precision, families point / diag / mn,
with kronvi's parameterization, initialization and local reparameterization per output position
(docs/nn-conv.md):

  point  y = conv(x, M) + b
  diag   y = conv(x, M) + b + sqrt(conv(x*x, sigma^2)) * eps          (log-sigma parameters)
  mn     cols = unfold(x) (B*P, k*k*c_in);  y = cols M + b + ||cols A||_row * (eps @ B^T)
         (A, B lower triangular with log diagonals; mean by conv2d)

and the ARD KLs of bench/torch_mlp.py (the weight of a convolution is the (k*k*c_in) x c_out
matrix). The loss is mean cross-entropy + KL / N (N = 60000). Every measurement is its own
process; families are interleaved over --reps repetitions; the table shows medians.

  torch_cnn.py [--families LIST] [--threads N] [--steps S] [--warmup W] [--reps R] [--data DIR]
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
ARCH = [10, "mp", 20, "mp", 40, "mp", 80, "mp"]  # then flatten and a dense layer to 10 classes


def load_images(data_dir, n):
    import torch
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), "rb") as f:
        buf = bytearray(f.read())
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), "rb") as f:
        lab = bytearray(f.read())
    X = torch.frombuffer(buf, dtype=torch.uint8, offset=16).view(-1, 1, 28, 28)[:n]
    Y = torch.frombuffer(lab, dtype=torch.uint8, offset=8).to(torch.int64)[:n]
    return X.to(torch.float32).div_(255.0), Y


def child(args):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    X, Y = load_images(args.data, 60000)
    family = args.child
    init_ls = -5.0

    def chol(raw):
        return torch.tril(raw, -1) + torch.diag(torch.exp(torch.diagonal(raw)))

    class Weight(nn.Module):
        """An n x m weight matrix with its posterior and ARD KL."""

        def __init__(self, n, m):
            super().__init__()
            self.n, self.m = n, m
            self.M = nn.Parameter(torch.randn(n, m) / math.sqrt(n))
            self.b = nn.Parameter(torch.zeros(m))
            ls = init_ls - (0.5 * math.log(2.0) if family == "mn-diag" else 0.0)
            if family == "diag":
                self.log_sigma = nn.Parameter(torch.full((n, m), ls))
            if family in ("mn", "mn-diag"):
                self.A = nn.Parameter(torch.diag(torch.full((n,), ls / 2)))
                self.B = nn.Parameter(torch.diag(torch.full((m,), ls / 2)))
            if family == "mn-diag":
                self.log_d = nn.Parameter(torch.full((n, m), 2 * ls))

        def kl(self):
            if family == "point":
                return None
            M2 = self.M * self.M
            if family == "diag":
                return 0.5 * torch.log1p(M2 / torch.exp(2 * self.log_sigma)).sum()
            A, B = chol(self.A), chol(self.B)
            u, v = (A * A).sum(1), (B * B).sum(1)
            la, lb = torch.diagonal(self.A).sum(), torch.diagonal(self.B).sum()
            n, m = self.n, self.m
            if family == "mn":
                return 0.5 * torch.log1p(M2 / torch.outer(u, v)).sum() + 0.5 * (
                    m * (torch.log(u).sum() - 2 * la) + n * (torch.log(v).sum() - 2 * lb))
            D = torch.exp(self.log_d)
            N = float(n * m)
            ld1, ld2 = 2 * m * la + 2 * n * lb, self.log_d.sum()
            lbound = N * torch.logsumexp(torch.stack((ld1 / N, ld2 / N)), 0)
            return 0.5 * torch.log(M2 + torch.outer(u, v) + D).sum() - 0.5 * lbound

        def lrt(self, cols, mean):
            """Noise of the local reparameterization for rows cols (R, n); mean (R, m)."""
            if family == "point":
                return mean
            if family == "diag":
                var = torch.exp(2 * self.log_sigma)
                return mean + torch.sqrt(torch.mm(cols * cols, var)) * torch.randn_like(mean)
            A, B = chol(self.A), chol(self.B)
            s = torch.linalg.vector_norm(torch.mm(cols, A), dim=1, keepdim=True)
            y = mean + s * torch.mm(torch.randn_like(mean), B.t())
            if family == "mn-diag":
                y = y + torch.sqrt(torch.mm(cols * cols, torch.exp(self.log_d))) * torch.randn_like(mean)
            return y

    class Conv(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.cin, self.cout = cin, cout
            self.w = Weight(9 * cin, cout)  # rows (c_in, ky, kx) in torch's unfold order

        def forward(self, x):
            Bn, _, H, W = x.shape
            Wk = self.w.M.t().reshape(self.cout, self.cin, 3, 3)
            mean = F.conv2d(x, Wk, self.w.b, padding=1)
            if family == "point":
                return mean
            if family == "diag":
                var = torch.exp(2 * self.w.log_sigma).t().reshape(self.cout, self.cin, 3, 3)
                sd = torch.sqrt(F.conv2d(x * x, var, padding=1))
                return mean + sd * torch.randn_like(mean)
            cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 9 * self.cin)
            mrows = mean.permute(0, 2, 3, 1).reshape(-1, self.cout)
            y = self.w.lrt(cols, mrows)
            return y.reshape(Bn, H, W, self.cout).permute(0, 3, 1, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            mods, c, side = [], 1, 28
            for t in ARCH:
                if t == "mp":
                    mods.append("mp")
                    side //= 2
                else:
                    mods.append(Conv(c, t))
                    c = t
            self.convs = nn.ModuleList(m for m in mods if m != "mp")
            self.plan = mods
            self.fc = Weight(c * side * side, 10)

        def forward(self, x):
            ci = 0
            for t in self.plan:
                if t == "mp":
                    x = F.max_pool2d(x, 2)
                else:
                    x = F.elu(self.convs[ci](x))
                    ci += 1
            x = x.flatten(1)
            y = self.fc.lrt(x, torch.addmm(self.fc.b, x, self.fc.M))
            kls = [k for k in (m.w.kl() for m in self.convs) if k is not None]
            k = self.fc.kl()
            if k is not None:
                kls.append(k)
            return y, (sum(kls) if kls else None)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Bsz, N = 100, X.shape[0]
    perm = torch.randperm(N)
    state = {"i": 0}

    def step():
        i = state["i"] % (N // Bsz)
        idx = perm[i * Bsz:(i + 1) * Bsz]
        opt.zero_grad(set_to_none=True)
        out, kl = net(X.index_select(0, idx))
        loss = F.cross_entropy(out, Y.index_select(0, idx))
        if kl is not None:
            loss = loss + kl / N
        loss.backward()
        opt.step()
        state["i"] += 1
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    s_step = (time.perf_counter() - t0) / args.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT family={family} s_step={s_step:.6e} maxrss_kb={rss} "
          f"loss={float(loss.detach()):.4f} torch_threads={torch.get_num_threads()}", flush=True)


def parent(args):
    fams = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in fams:
        if f not in FAMILIES:
            sys.exit(f"torch_cnn: unknown family {f!r} (expected {', '.join(FAMILIES)})")
    env = lambda k: os.environ.get(k, "(unset)")
    print(f"torch_cnn: PyTorch CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10, ELU, ARD, Adam, batch 100"
          f" | torch.set_num_threads({args.threads}) | OMP_NUM_THREADS={env('OMP_NUM_THREADS')} | "
          f"OPENBLAS_NUM_THREADS={env('OPENBLAS_NUM_THREADS')} | "
          f"OPENBLAS_CORETYPE={env('OPENBLAS_CORETYPE')}")
    res = {f: [] for f in fams}
    me = os.path.abspath(__file__)
    for _ in range(args.reps):
        for f in fams:
            cmd = [sys.executable, me, "--child", f, "--threads", str(args.threads), "--steps",
                   str(args.steps), "--warmup", str(args.warmup), "--data", args.data]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            if p.returncode != 0 or not lines:
                sys.exit(f"torch_cnn: child for {f} failed (status {p.returncode})")
            kv = dict(t.split("=", 1) for t in lines[-1].split()[1:])
            res[f].append((float(kv["s_step"]), int(kv["maxrss_kb"]) / 1024.0))
    base = statistics.median(t for t, _ in res["diag"]) if "diag" in res else float("nan")
    print(f"{'family':<8} | {'s/step':>10} | {'s/epoch':>9} | {'vs diag':>8} | {'peak MB':>8}")
    for f in fams:
        med = statistics.median(t for t, _ in res[f])
        print(f"{f:<8} | {med:10.5f} | {med * 600:9.2f} | {med / base:8.2f} | "
              f"{max(r for _, r in res[f]):8.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="point,diag,mn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1 or args.steps < 1 or args.reps < 1 or args.warmup < 0:
        sys.exit("torch_cnn: threads, steps and reps must be positive")
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
