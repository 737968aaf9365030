#!/usr/bin/env python3
"""What this machine's BLAS can do for the speed targets: single-precision matrix products through
OpenBLAS (NumPy's libblas), at 1 and 2 BLAS threads, for a large square product (the machine's
ceiling) and for the products of one training step of the models in bench/speed.sh and
bench/torch_vae.py (batch 100): the MLP, the VAE and the CNN's unfolded (im2col) products.
For each model it prints the useful multiply-adds of one step, OpenBLAS's time for exactly those
products, and the step time a target ratio asks for, so that a target can be compared with the
products it needs before anything else of the step runs.

    bench/gemm_ceiling.py [--seconds S] [--threads 1,2]

Each thread count runs in its own child process (OPENBLAS_NUM_THREADS is read when OpenBLAS
loads). OPENBLAS_CORETYPE is passed on as set: unset it to let OpenBLAS pick its kernels.
"""
import argparse
import os
import subprocess
import sys
import time

B = 100


def dense_products(layers, first_dx=False):
    """(M, N, K) of a dense net's step: forward X W, weight gradient X^T dY, input gradient dY W^T
    (not for the first layer)."""
    out = []
    for i, (n, m) in enumerate(layers):
        out += [(B, m, n), (n, m, B)]
        if i > 0 or first_dx:
            out.append((B, n, m))
    return out


def models():
    mlp = [(784, 300), (300, 300), (300, 300), (300, 10)]
    vae = [(784, 300), (300, 300), (300, 300), (300, 80),  # encoder, DIAG head 2|z|
           (40, 300), (300, 300), (300, 300), (300, 784)]  # decoder
    vae_p = dense_products(vae[:4]) + dense_products(vae[4:], first_dx=True)
    # the CNN's MN step (docs/nn-conv.md): per layer R rows of patches, n = 9 c_in, m = c_out;
    # X M, X A (A lower: half the multiply-adds of a full product), eps B^T (lower), and the
    # backward's X^T dY, dY M^T, X^T dZ and dZ A^T (half), dN^T eps (half)
    cnn = []
    for R, n, m, first in [(78400, 9, 10, True), (19600, 90, 20, False),
                           (4900, 180, 40, False), (900, 360, 80, False)]:
        cnn += [(R, m, n, 1.0), (R, n, n, 0.5), (R, m, m, 0.5), (n, m, R, 1.0), (n, n, R, 0.5),
                (m, m, R, 0.5)]
        if not first:
            cnn += [(R, n, m, 1.0), (R, n, n, 0.5)]
    return [
        ("MLP 784-300-300-300-10, point step", [(M, N, K, 1.0) for M, N, K in dense_products(mlp)]),
        ("VAE 784-300-300-300-80 / 40-300-300-300-784, DIAG step",
         [(M, N, K, 1.0) for M, N, K in vae_p]),
        ("CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10, MN step (im2col products)", cnn),
    ]


def timed(f, seconds):
    for _ in range(3):
        f()
    t, k = time.perf_counter(), 0
    while True:
        f()
        k += 1
        dt = time.perf_counter() - t
        if dt >= seconds:
            return dt / k


def child(seconds):
    import numpy as np
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    t = timed(lambda: a @ b, seconds)
    print("square 2048: %.0f GFLOPS" % (2 * 2048 ** 3 / t / 1e9))
    for name, prods in models():
        mats = [(rng.standard_normal((M, K), dtype=np.float32),
                 rng.standard_normal((K, N), dtype=np.float32)) for M, N, K, _ in prods]
        useful = sum(M * N * K * w for M, N, K, w in prods)
        full = sum(M * N * K for M, N, K, _ in prods)

        def step():
            for x, y in mats:
                x @ y
        t = timed(step, seconds)
        # a triangular product (weight 1/2) is timed as a full one and counted at half its time
        t_useful = t * useful / full
        print("%s: %.1f M multiply-adds, OpenBLAS %.3f ms (%.0f GFLOPS)"
              % (name, useful / 1e6, t_useful * 1e3, 2 * useful / t_useful / 1e9))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per measurement (1)")
    ap.add_argument("--threads", default="1,2", help="BLAS thread counts (1,2)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.seconds)
        return 0
    print("OPENBLAS_CORETYPE=%s, %d CPUs online, load average %s"
          % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"), os.cpu_count(),
             " ".join("%.2f" % x for x in os.getloadavg())))
    for th in a.threads.split(","):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=th, OMP_NUM_THREADS=th)
        print("\n== OpenBLAS threads %s" % th, flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", "--seconds", str(a.seconds)],
                           env=env)
        if r.returncode:
            return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
