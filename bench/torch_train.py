#!/usr/bin/python3
"""A whole training run in PyTorch, the baseline of `kronvi train` as a process: load Fashion-MNIST
(gzip IDX), build the MLP 784-300-300-300-10 or the CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10
(bench/torch_models.py: kronvi's parameterization, initialization, local reparameterization and
ARD KL), train it with Adam (lr 1e-3, batch 100, loss mean cross-entropy + KL / N) for --epochs
epochs over a fresh permutation each epoch, and after every epoch evaluate on the test set the
accuracy of the mean weights and of the pruned mean weights (log alpha = log(Var / M^2) > 3
dropped, kronvi's rule). Prints one line per epoch and the wall time since the interpreter
started (time.perf_counter from the first line of this file, so `import torch` counts; the
interpreter's own start-up, a few ms, does not: bench/speed.sh measures the process from outside).

  torch_train.py [--model mlp|cnn] [--family mn] [--epochs 2] [--threads 2] [--seed 1]
                 [--data DIR] [--prune-threshold 3] [--channels-last {0,1}]
                 [--limit-train N] [--limit-test N]
"""
import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

ARCH = {"mlp": "784-300-300-300-10", "cnn": "1-10-mp-20-mp-40-mp-80-mp-flatten-10"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=tuple(ARCH), default="mlp")
    ap.add_argument("--family", choices=("point", "diag", "mn", "mn-diag"), default="mn")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--prune-threshold", type=float, default=3.0)
    ap.add_argument("--channels-last", type=int, choices=(0, 1), default=None,
                    help="CNN activations in NHWC (default: 1 for the CNN)")
    ap.add_argument("--limit-train", type=int, default=0,
                    help="use only the first N training rows (default all; as kronvi train)")
    ap.add_argument("--limit-test", type=int, default=0,
                    help="use only the first N test rows (default all)")
    args = ap.parse_args()
    if args.threads < 1 or args.epochs < 1 or args.batch < 1:
        sys.exit("torch_train: threads, epochs and batch must be positive")

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_malloc

    malloc_mode = torch_malloc.tune()
    import torch
    import torch.nn.functional as F

    import torch_models as tm

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_import = time.perf_counter() - T0
    X, Y, Xt, Yt = tm.load_idx(args.data)
    if args.limit_train > 0:
        X, Y = X[:args.limit_train], Y[:args.limit_train]
    if args.limit_test > 0:
        Xt, Yt = Xt[:args.limit_test], Yt[:args.limit_test]
    t_data = time.perf_counter() - T0 - t_import
    cl = args.channels_last if args.channels_last is not None else int(args.model == "cnn")
    net = tm.build(ARCH[args.model], args.family, channels_last=bool(cl))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    N, B = X.shape[0], args.batch
    nb = N // B
    if nb < 1:
        sys.exit("torch_train: fewer training rows than one batch")
    env = lambda k: os.environ.get(k, "(unset)")
    print(f"torch_train: {args.model} {ARCH[args.model]} family {args.family} ARD, Adam lr 1e-3, "
          f"batch {B}, {args.epochs} epochs of {nb} steps | torch {torch.__version__} "
          f"set_num_threads({args.threads}) OMP_NUM_THREADS={env('OMP_NUM_THREADS')} "
          f"OPENBLAS_NUM_THREADS={env('OPENBLAS_NUM_THREADS')} channels_last={cl} malloc {malloc_mode} | "
          f"import {t_import:.2f} s, data {t_data:.2f} s", flush=True)
    for e in range(args.epochs):
        t_e = time.perf_counter()
        perm = torch.randperm(N)
        tot = 0.0
        for i in range(nb):
            idx = perm[i * B:(i + 1) * B]
            opt.zero_grad(set_to_none=True)
            out, kl = net(X.index_select(0, idx))
            loss = F.cross_entropy(out, Y.index_select(0, idx))
            if kl is not None:
                loss = loss + kl / N
            loss.backward()
            opt.step()
            tot += float(loss.detach())
        t_train = time.perf_counter() - t_e
        t_v = time.perf_counter()
        acc = tm.accuracy(net, Xt, Yt)
        pacc, frac = tm.pruned_accuracy(net, Xt, Yt, args.prune_threshold)
        t_eval = time.perf_counter() - t_v
        print(f"epoch {e + 1:3d}  loss {tot / nb:.4f}  test acc {acc * 100:.2f}%  pruned acc "
              f"{pacc * 100:.2f}% ({frac * 100:.1f}% of weights log alpha > "
              f"{args.prune_threshold:g})  train {t_train:.1f}s  eval {t_eval:.1f}s", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall = time.perf_counter() - T0
    print(f"RESULT model={args.model} family={args.family} epochs={args.epochs} wall_s={wall:.2f} "
          f"maxrss_kb={rss} acc={acc:.4f} pruned_acc={pacc:.4f} pruned_frac={frac:.4f} "
          f"threads={args.threads}", flush=True)


if __name__ == "__main__":
    main()
