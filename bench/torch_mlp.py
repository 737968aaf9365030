#!/usr/bin/python3
"""kronvi's speed-acceptance models in PyTorch, seconds per training step: the Fashion-MNIST MLP
784-300-300-300-10 (this script) or the CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10
(bench/torch_cnn.py, the same program with CNN defaults), ELU, ARD prior, Adam (lr 1e-3),
batch 100, single precision, families point / diag / mn / mn-diag. The models, their
parameterization, initialization, local reparameterization and KL are kronvi's
(bench/torch_models.py; docs/benchmarks.md, "PyTorch baselines").

A step is the trainer's: gather the batch with index_select from an epoch permutation of
pre-loaded float32 tensors, forward with fresh noise (every layer builds its factors once and uses
them for the noise and the KL), loss = mean cross-entropy + beta KL / N (beta = 1, N = 60000),
backward, torch.optim.Adam. No Python loop inside a step other than over the layers.

Like bench_epoch, every measurement runs in its own process (peak RSS per family; the parent does
not import torch) and families are interleaved over --reps repetitions. Threads: --threads N calls
torch.set_num_threads(N) in the child; OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / OPENBLAS_CORETYPE
come from the environment (bench/speed.sh sweeps them). This torch (Debian 1.13, BLAS_INFO=generic)
does its matrix products through libblas.so.3 = OpenBLAS (pthreads build), whose thread count
torch.set_num_threads does NOT set: only OPENBLAS_NUM_THREADS does. Its convolutions go to oneDNN
(torch's own OpenMP threads). glibc's malloc keeps freed memory for torch (bench/torch_malloc.py;
TORCH_MALLOC=default: glibc's defaults).

  torch_mlp.py [--families LIST] [--threads N] [--steps S] [--warmup W] [--reps R] [--full]
               [--synthetic | --data DIR] [--arch SIZES] [--channels-last] [--foreach {0,1}]
               [--raw]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

FAMILIES = ("point", "diag", "mn", "mn-diag")
DEFAULTS = {
    "mlp": dict(arch="784-300-300-300-10", steps=100, warmup=10, families=",".join(FAMILIES),
                channels_last=0),
    "cnn": dict(arch="1-10-mp-20-mp-40-mp-80-mp-flatten-10", steps=30, warmup=5,
                families="point,diag,mn", channels_last=1),
}


def child(args):
    import math
    import resource

    import torch_malloc

    malloc_mode = torch_malloc.tune()
    import torch
    import torch.nn.functional as F
    import torch_models as tm

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
        X, Y, Xt, Yt = tm.load_idx(args.data)
    t_load = time.perf_counter() - t_load
    family = args.child
    net = tm.build(args.arch, family, channels_last=bool(args.channels_last))
    opt_kw = {}
    if args.foreach is not None:
        opt_kw["foreach"] = bool(args.foreach)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, **opt_kw)
    nparams = sum(p.numel() for p in net.parameters())
    Bsz, Ntrain, beta = args.batch, X.shape[0], 1.0
    kl_scale = beta / Ntrain
    nb = Ntrain // Bsz
    perm = torch.randperm(Ntrain)
    state = {"step": 0}

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
        print(f"torch: {family}: loss is not finite", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    env = lambda k: os.environ.get(k, "(unset)")
    print(f"RESULT family={family} s_step={s_step:.6e} maxrss_kb={rss} params={nparams} "
          f"threads={args.threads} torch_threads={torch.get_num_threads()} "
          f"omp={env('OMP_NUM_THREADS')} openblas={env('OPENBLAS_NUM_THREADS')} "
          f"coretype={env('OPENBLAS_CORETYPE')} channels_last={int(bool(args.channels_last))} "
          f"steps={steps} load_s={t_load:.2f} kl_init={kl0:.6e} loss={lv:.4f} malloc={malloc_mode} "
          f"torch={torch.__version__}", flush=True)


def parent(args, name):
    fams = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in fams:
        if f not in FAMILIES:
            sys.exit(f"{name}: unknown family {f!r} (expected {', '.join(FAMILIES)})")
    env = lambda k: os.environ.get(k, "(unset)")
    with open("/proc/loadavg") as fh:
        la = " ".join(fh.read().split()[:3])
    print(f"{name}: PyTorch (python3-torch) {args.arch}, ELU, ARD prior, Adam lr 1e-3, "
          f"batch {args.batch}, {'synthetic data' if args.synthetic else args.data}")
    print(f"torch.set_num_threads({args.threads}) | OMP_NUM_THREADS={env('OMP_NUM_THREADS')} | "
          f"OPENBLAS_NUM_THREADS={env('OPENBLAS_NUM_THREADS')} | "
          f"OPENBLAS_CORETYPE={env('OPENBLAS_CORETYPE')} | channels_last={int(args.channels_last)}"
          f" | {os.cpu_count()} CPUs | load average {la}")
    print(f"{'600 (full epoch)' if args.full else args.steps} timed steps after {args.warmup} "
          f"warm-up steps per process; {args.reps} processes per family, interleaved; "
          f"s/epoch = s/step x 600", flush=True)
    res = {f: [] for f in fams}
    me = os.path.abspath(sys.argv[0])
    for _ in range(args.reps):
        for f in fams:
            cmd = [sys.executable, me, "--child", f, "--threads", str(args.threads),
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--arch", args.arch, "--batch", str(args.batch),
                   "--channels-last", str(args.channels_last)]
            cmd += ["--synthetic"] if args.synthetic else ["--data", args.data]
            if args.full:
                cmd.append("--full")
            if args.foreach is not None:
                cmd += ["--foreach", str(args.foreach)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            if p.returncode != 0 or not lines:
                sys.exit(f"{name}: child for {f} failed (status {p.returncode})")
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


def main(model="mlp"):
    d = DEFAULTS[model]
    name = os.path.basename(sys.argv[0]).removesuffix(".py")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=d["families"])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=d["steps"],
                    help=f"timed steps (default {d['steps']})")
    ap.add_argument("--warmup", type=int, default=d["warmup"],
                    help=f"untimed steps first (default {d['warmup']})")
    ap.add_argument("--reps", type=int, default=3, help="processes per family (default 3)")
    ap.add_argument("--full", action="store_true", help="time one full epoch (600 steps)")
    ap.add_argument("--synthetic", action="store_true", help="random data of the same shape")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--arch", default=d["arch"])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--channels-last", type=int, choices=(0, 1), default=d["channels_last"],
                    help="CNN: channels_last (NHWC) activations, oneDNN's fast layout "
                         f"(default {d['channels_last']})")
    ap.add_argument("--foreach", type=int, choices=(0, 1), default=None,
                    help="Adam foreach implementation (default: torch's choice)")
    ap.add_argument("--raw", action="store_true", help="print the children's RESULT lines")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1 or args.steps < 1 or args.reps < 1 or args.warmup < 0:
        sys.exit(f"{name}: threads, steps and reps must be positive")
    if args.child:
        child(args)
    else:
        parent(args, name)


if __name__ == "__main__":
    main("mlp")
