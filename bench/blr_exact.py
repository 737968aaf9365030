#!/usr/bin/env python3
"""Exact-posterior check of `kronvi train --task regression` (paper §4.1, docs/train-regression.md).

Bayesian multivariate linear regression  y = x W + noise,  x (1, n), W (n, m),
noise ~ N(0, beta^-1 I_m), prior W_ij ~ N(0, VAR) iid (alpha = 1/VAR). The posterior is exact
and matrix normal:

    W | X, Y ~ MN(M, U, I_m),  U = (beta X^T X + alpha I)^-1,  M = beta U X^T Y.

The script generates a synthetic set with strongly correlated inputs (AR(1) correlation
rho^|i-k| between the n inputs, so that U is far from diagonal), writes train.csv, runs
`kronvi train` for the families mn and diag with the same settings, reads the learned posteriors
with `kronvi inspect --json` and prints KL(q || exact posterior) in nats, with q = MN(M, U, V)
(covariance U (x) V over the row-major vec of W) for mn and q = N(vec M, diag var) for diag.

For diag it also prints the floor: the best fully factorized Gaussian to a Gaussian p with
precision P (here P = (beta X^T X + alpha I) (x) I_m) matches the diagonal of P, and its KL is
    KL* = 1/2 sum_k log P_kk - 1/2 log |P| = 1/2 m (sum_i log P_ii - log |beta X^T X + alpha I|),
which no diag fit can go below. The target for mn is KL <= 0.1 nats.

Only python3 + numpy. Usage (from the repository root, after building the CLI):
    python3 bench/blr_exact.py                      # defaults: build-blr/kronvi, settings below
    python3 bench/blr_exact.py --kronvi build/kronvi --epochs 3000 --batch 100 --lr 0.03 \
        --lr-final 1e-6 --init-log-sigma -3
Exit status 0 when the mn KL is <= --target (default 0.1), 1 otherwise.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_data(N, n, m, rho, beta, var, seed):
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    C = rho ** np.abs(idx[:, None] - idx[None, :])  # AR(1) input correlation
    X = rng.standard_normal((N, n)) @ np.linalg.cholesky(C).T
    W = rng.standard_normal((n, m)) * np.sqrt(var)  # a draw from the prior
    Y = X @ W + rng.standard_normal((N, m)) / np.sqrt(beta)
    return X, Y


def exact_posterior(X, Y, beta, var):
    n = X.shape[1]
    P = beta * X.T @ X + np.eye(n) / var  # posterior precision of every column of W
    U = np.linalg.inv(P)
    U = 0.5 * (U + U.T)
    M = beta * U @ X.T @ Y
    return M, U, P


def gauss_kl(mq, Sq, mp, Sp):
    """KL(N(mq, Sq) || N(mp, Sp)) in nats, dense (d is small here)."""
    d = mq.size
    Lp = np.linalg.cholesky(Sp)
    A = np.linalg.solve(Lp, np.linalg.cholesky(Sq))
    r = np.linalg.solve(Lp, mp - mq)
    _, ldp = np.linalg.slogdet(Sp)
    _, ldq = np.linalg.slogdet(Sq)
    return 0.5 * (np.sum(A * A) + r @ r - d + ldp - ldq), 0.5 * (r @ r)


def q_of_layer(layer):
    """(mean, covariance) of the learned posterior over the row-major vec of W."""
    M = np.array(layer["M"], dtype=float)
    if "U" in layer and "V" in layer:
        U = np.array(layer["U"], dtype=float)
        V = np.array(layer["V"], dtype=float)
        U, V = 0.5 * (U + U.T), 0.5 * (V + V.T)
        S = np.kron(U, V)  # [(i m + j), (k m + l)] = U_ik V_jl
        if "D" in layer:
            S = S + np.diag(np.array(layer["D"], dtype=float).ravel())
        return M.ravel(), S
    if "var" in layer:
        return M.ravel(), np.diag(np.array(layer["var"], dtype=float).ravel())
    raise ValueError("layer %s has no posterior covariance (point family?)" % layer.get("name"))


def run_family(args, family, csv, workdir, m, n):
    model = os.path.join(workdir, "blr_%s.safetensors" % family)
    cmd = [args.kronvi, "train", "--task", "regression", "--data", csv, "--targets", str(m),
           "--arch", "%d-%d" % (n, m), "--family", family, "--prior", "fixed:%g" % args.var,
           "--noise-precision", "%g" % args.beta, "--no-bias", "--epochs", str(args.epochs),
           "--batch", str(args.batch), "--lr", "%g" % args.lr,
           "--init-log-sigma", "%g" % args.init_log_sigma, "--seed", str(args.seed),
           "--threads", str(args.threads), "--progress", "none", "--save", model]
    if args.lr_final > 0:
        cmd += ["--lr-final", "%g" % args.lr_final]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.time() - t0
    if r.returncode != 0:
        sys.exit("kronvi train failed (%d):\n%s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
    r2 = subprocess.run([args.kronvi, "inspect", model, "--json"], capture_output=True, text=True)
    if r2.returncode != 0:
        sys.exit("kronvi inspect failed:\n%s" % r2.stderr)
    info = json.loads(r2.stdout)
    return cmd, secs, info["layers"][0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kronvi", default=None,
                    help="the CLI (default: $KRONVI, else build/kronvi, else build-blr/kronvi)")
    ap.add_argument("--workdir", default=None,
                    help="where train.csv and the models go, kept (default: a temporary "
                    "directory, on /dev/shm when there is one, removed at the end)")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--rho", type=float, default=0.9, help="AR(1) correlation of the inputs")
    ap.add_argument("--beta", type=float, default=4.0, help="noise precision")
    ap.add_argument("--var", type=float, default=1.0, help="prior variance (alpha = 1/var)")
    ap.add_argument("--data-seed", type=int, default=2024)
    ap.add_argument("--families", default="mn,diag")
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--lr-final", type=float, default=1e-6)
    ap.add_argument("--init-log-sigma", type=float, default=-3.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--target", type=float, default=0.1, help="pass if the mn KL is <= this")
    args = ap.parse_args()
    if args.kronvi is None:
        cands = [os.environ.get("KRONVI", "")] + [os.path.join(root, b, "kronvi")
                                                   for b in ("build", "build-blr")]
        args.kronvi = next((c for c in cands if c and os.access(c, os.X_OK)), None)
        if args.kronvi is None:
            sys.exit("kronvi CLI not found: build it (cmake --build build --target kronvi) or "
                     "pass --kronvi PATH")

    # --save checkpoints (with fsync) after every epoch: a tmpfs keeps that cheap
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return check(args, args.workdir)
    tmp = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="kronvi_blr_", dir=tmp) as workdir:
        return check(args, workdir)


def check(args, workdir):
    N, n, m = args.rows, args.inputs, args.targets
    X, Y = make_data(N, n, m, args.rho, args.beta, args.var, args.data_seed)
    Mp, Up, P = exact_posterior(X, Y, args.beta, args.var)
    mp, Sp = Mp.ravel(), np.kron(Up, np.eye(m))  # row-major vec of W: covariance U (x) I_m
    floor = 0.5 * m * (np.sum(np.log(np.diag(P))) - np.linalg.slogdet(P)[1])
    ev = np.linalg.eigvalsh(P)
    sd = np.sqrt(np.diag(Up))
    corr = Up / np.outer(sd, sd)
    offd = np.abs(corr[~np.eye(n, dtype=bool)])

    csv = os.path.join(workdir, "train.csv")
    np.savetxt(csv, np.hstack([X, Y]), delimiter=",", fmt="%.17g")
    print("BLR exact-posterior check: N=%d rows, n=%d inputs, m=%d targets, AR(1) rho=%g, "
          "beta=%g, prior var=%g" % (N, n, m, args.rho, args.beta, args.var))
    print("exact posterior: cond(P)=%.1f, U correlations |off-diag| max %.3f mean %.3f, "
          "posterior sd %.4g..%.4g" % (ev[-1] / ev[0], offd.max(), offd.mean(), sd.min(),
                                       sd.max()))
    print()
    rows = []
    for fam in [f for f in args.families.split(",") if f]:
        cmd, secs, layer = run_family(args, fam, csv, workdir, m, n)
        print("$ " + " ".join(cmd))
        mq, Sq = q_of_layer(layer)
        kl, kl_mean = gauss_kl(mq, Sq, mp, Sp)
        rows.append((fam, kl, kl_mean, secs))
    print()
    print("%-8s %12s %12s %12s %10s" % ("family", "KL(q||p)", "mean part", "floor", "train s"))
    for fam, kl, kl_mean, secs in rows:
        print("%-8s %12.4f %12.4f %12.4f %10.1f"
              % (fam, kl, kl_mean, floor if fam == "diag" else 0.0, secs))
    print("(KL in nats over the %d weights; mean part = 1/2 (m_p - m_q)^T S_p^-1 (m_p - m_q);\n"
          " floor = the family's best possible KL: 0 for mn, 1/2 m (sum log P_ii - log|P|) for "
          "diag)" % (n * m))
    ok = True
    for fam, kl, _, _ in rows:
        if fam == "mn" and not kl <= args.target:
            print("FAIL: mn KL %.4f > target %g" % (kl, args.target))
            ok = False
        if fam == "diag" and kl < floor - 1e-3 * max(1.0, floor):
            print("FAIL: diag KL %.4f below its floor %.4f (impossible: check the KL code)"
                  % (kl, floor))
            ok = False
    if ok and any(f == "mn" for f, _, _, _ in rows):
        print("PASS: mn KL <= %g" % args.target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
