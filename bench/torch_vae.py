#!/usr/bin/python3
"""kronvi's variational auto-encoder (docs/vae.md) in PyTorch (Debian python3-torch), for the
time per epoch of each latent family against `kronvi vae train`: the same encoder and decoder
(784-300-300-300-H and |z|-300-300-300-784, ELU, point weights), the same heads and their
parameter layouts, a Bernoulli decoder, the closed-form KL to N(0, I), Adam (lr 5e-4), batch 100,
single precision. Every operation is batched over the mini-batch (no Python loop over examples):

  diag  out = [mu (d), log sigma (d)];  z = mu + sigma eps
        KL = 1/2 sum (sigma^2 + mu^2 - 1 - 2 log sigma)
  mn    out = [M (p q), tril(A) (p(p+1)/2), tril(B) (q(q+1)/2)], diagonals as logs;
        Z = M + A E B^T (batched matmuls); KL = 1/2 [tr U tr V + |M|^2 - pq - 2q sum log A_ii
        - 2p sum log B_jj],  U = A A^T, V = B B^T
  mv    out = [mu (d), tril(L) (d(d+1)/2)];  z = mu + L eps
        KL = 1/2 [|L|_F^2 + |mu|^2 - d - 2 sum log L_ii]
The triangles are stored row by row (torch.tril_indices order), as in kronvi.

  torch_vae.py [--data DIR | --synthetic] [--families diag,mn,mv] [--latent 40] [--mn-shape 20x2]
               [--images N] [--epochs E] [--threads T] [--torch-threads LIST] [--kronvi PATH]

--data DIR: binarized IDX images (kronvi vae binarize); --synthetic: random bits. An epoch is
--images training images (default 50000: Fashion-MNIST's 60000 minus the validation 10000);
one untimed warm-up epoch, then the median of --epochs timed ones (default 2). --kronvi PATH
also times `PATH vae train` on the same images (--val 0, one thread count) and prints both.
OPENBLAS_NUM_THREADS sets the thread count of torch's matrix products on Debian's build (see
bench/torch_mlp.py); --threads sets it (unless set) and kronvi's thread count. --torch-threads
LIST (default: --threads) times torch at each torch.set_num_threads value in turn, in the same
process, and the ratio uses the fastest. glibc's malloc keeps freed
memory for torch (bench/torch_malloc.py; TORCH_MALLOC=default: glibc's defaults).
"""
import argparse
import csv
import gzip
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def load_images(path, n):
    raw = gzip.open(path).read()
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803:
        sys.exit(f"{path}: not an IDX image file")
    n = min(n, count)
    return raw[16:16 + n * rows * cols], n, rows * cols


def head_size(fam, d, p, q):
    return {"diag": 2 * d, "mn": d + p * (p + 1) // 2 + q * (q + 1) // 2,
            "mv": d + d * (d + 1) // 2}[fam]


def make_model(torch, fam, d, p, q, D=784, h=300, layers=3):
    nn = torch.nn

    def mlp(i, o):
        mods, k = [], i
        for _ in range(layers):
            mods += [nn.Linear(k, h), nn.ELU()]
            k = h
        mods.append(nn.Linear(k, o))
        return nn.Sequential(*mods)

    enc, dec = mlp(D, head_size(fam, d, p, q)), mlp(d, D)
    n = d if fam == "mv" else p
    tri_a = torch.tril_indices(n, n)
    tri_b = torch.tril_indices(q, q)

    def tril(v, idx, n):  # (B, n(n+1)/2) -> (B, n, n), diagonal exponentiated
        L = v.new_zeros(v.shape[0], n, n)
        L[:, idx[0], idx[1]] = v
        dg = torch.diagonal(L, dim1=1, dim2=2)
        return L - torch.diag_embed(dg) + torch.diag_embed(dg.exp()), dg

    def loss(x, beta):
        out = enc(x)
        B = x.shape[0]
        if fam == "diag":
            mu, ls = out[:, :d], out[:, d:]
            z = mu + ls.exp() * torch.randn_like(mu)
            kl = 0.5 * ((2 * ls).exp() + mu * mu - 1 - 2 * ls).sum(1)
        elif fam == "mn":
            M = out[:, :d].view(B, p, q)
            A, la = tril(out[:, d:d + p * (p + 1) // 2], tri_a, p)
            Bf, lb = tril(out[:, d + p * (p + 1) // 2:], tri_b, q)
            E = torch.randn(B, p, q)
            z = (M + A @ E @ Bf.transpose(1, 2)).reshape(B, d)
            trU, trV = (A * A).sum((1, 2)), (Bf * Bf).sum((1, 2))
            kl = 0.5 * (trU * trV + (M * M).sum((1, 2)) - d - 2 * q * la.sum(1) - 2 * p * lb.sum(1))
        else:
            mu = out[:, :d]
            L, ll = tril(out[:, d:], tri_a, d)
            z = mu + (L @ torch.randn(B, d, 1)).squeeze(2)
            kl = 0.5 * ((L * L).sum((1, 2)) + (mu * mu).sum(1) - d - 2 * ll.sum(1))
        rec = -torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(1)
        return -(rec - beta * kl).mean()

    return list(enc.parameters()) + list(dec.parameters()), loss


def time_torch(args, fam, X, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    params, loss = make_model(torch, fam, args.latent, args.p, args.q)
    opt = torch.optim.Adam(params, lr=5e-4)
    n, B = X.shape[0], 100
    times = []
    for e in range(args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, B):
            xb = X.index_select(0, perm[i:i + B])
            opt.zero_grad(set_to_none=True)
            loss(xb, 1.0).backward()
            opt.step()
        if e > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_kronvi(args, fam):
    shape = ["--mn-shape", f"{args.p}x{args.q}"] if fam == "mn" else []
    cmd = [args.kronvi, "vae", "train", "--data", args.data, "--family", fam, "--latent",
           str(args.latent), *shape, "--limit-train", str(args.images), "--val", "0",
           "--epochs", str(args.epochs + 1), "--kl-anneal-epochs", "0", "--threads",
           str(args.threads), "--fixed-threads", "--progress", "none"]
    with tempfile.TemporaryDirectory() as tmp:  # the log's seconds: the epoch's training steps
        log = os.path.join(tmp, "log.csv")
        r = subprocess.run(cmd + ["--log", log], capture_output=True, text=True)
        secs = []
        if r.returncode == 0:
            with open(log) as f:
                secs = [float(row["seconds"]) for row in csv.DictReader(f)]
    if r.returncode or len(secs) < 2:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return statistics.median(secs[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--families", default="diag,mn,mv")
    ap.add_argument("--latent", type=int, default=40)
    ap.add_argument("--mn-shape", default="20x2")
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torch-threads")
    ap.add_argument("--kronvi")
    args = ap.parse_args()
    args.p, args.q = (int(v) for v in args.mn_shape.lower().split("x"))
    if args.p * args.q != args.latent:
        sys.exit(f"--mn-shape {args.mn_shape}: P*Q must equal --latent {args.latent}")
    if not args.data and not args.synthetic:
        sys.exit("give --data DIR (binarized IDX images) or --synthetic")
    if args.kronvi and not args.data:
        sys.exit("--kronvi needs --data")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_malloc

    malloc_mode = torch_malloc.tune()
    import torch
    if args.data:
        raw, n, D = load_images(os.path.join(args.data, "train-images-idx3-ubyte.gz"), args.images)
        X = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(n, D).float().div_(255)
        if not bool(((X == 0) | (X == 1)).all()):
            sys.exit(f"{args.data}: not binary (kronvi vae binarize writes a binarized copy)")
    else:
        g = torch.Generator().manual_seed(0)
        X = (torch.rand(args.images, 784, generator=g) < 0.3).float()
    args.images = X.shape[0]
    tt = [int(v) for v in (args.torch_threads or str(args.threads)).split(",")]
    print(f"VAE 784-300-300-300-H / |z|-300-300-300-784, |z| {args.latent}, batch 100, "
          f"{args.images} images per epoch, torch {torch.__version__} at set_num_threads "
          f"{','.join(map(str, tt))} (OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}), "
          f"malloc {malloc_mode}" + (f"; kronvi --threads {args.threads}" if args.kronvi else ""))
    head = "".join(f" {f'torch t{t}':>9}" for t in tt)
    print(f"{'family':8}{head} {'torch best':>10}" +
          (f" {'kronvi s/epoch':>15} {'ratio':>6}" if args.kronvi else ""))
    for fam in args.families.split(","):
        if fam not in ("diag", "mn", "mv"):
            sys.exit(f"unknown family '{fam}'")
        ts = [time_torch(args, fam, X, t) for t in tt]
        line = f"{fam:8}" + "".join(f" {t:9.2f}" for t in ts) + f" {min(ts):10.2f}"
        if args.kronvi:
            k = time_kronvi(args, fam)
            line += f" {k:15.2f} {min(ts) / k:6.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
