"""glibc malloc settings for the PyTorch baselines (bench/torch_*.py).

PyTorch frees and allocates its large temporary tensors at every step. With glibc's defaults a
block above the (dynamic) mmap threshold is mapped and unmapped each time, and the heap top is
trimmed back to the system, so every step takes fresh pages: page faults and clearing. On a
virtual machine where page faults are expensive this halved PyTorch's speed (docs/benchmarks.md,
"PyTorch's allocator"). tune() keeps freed memory in the heap instead, as a long-running PyTorch
job would be configured: M_MMAP_THRESHOLD at glibc's maximum (32 MiB), M_TRIM_THRESHOLD 1 GiB,
M_TOP_PAD 256 MiB, through mallopt(3) before the first step. TORCH_MALLOC=default in the
environment leaves glibc's defaults (for comparison). kronvi allocates its buffers once, so the
settings do not concern it.
"""
import ctypes
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def tune():
    """Applies the settings unless TORCH_MALLOC=default; returns the mode for the output."""
    mode = os.environ.get("TORCH_MALLOC", "tuned")
    if mode == "default":
        return "default"
    if mode != "tuned":
        raise SystemExit(f"TORCH_MALLOC={mode}: expected tuned or default")
    libc = ctypes.CDLL("libc.so.6")
    ok = (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 and
          libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 and
          libc.mallopt(M_TOP_PAD, 256 << 20) == 1)
    if not ok:
        raise SystemExit("mallopt failed: set TORCH_MALLOC=default to run with glibc's defaults")
    return "tuned"
