#!/usr/bin/env python3
"""rel_diff.py A B [TOL]: compares the parameter tensors of two safetensors checkpoints (the
optimizer state, named optim.* or kfac.*, is left out). For each tensor it computes
max |a - b| / max |a| and prints the largest over the tensors with its name ("max relative
difference 3.1e-07 (fc0.M)"). Exit status 1 when that exceeds TOL (default 1e-3), when the tensor
names or shapes differ, or when a value is not finite. Standard library only."""
import array
import json
import math
import struct
import sys


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    out = {}
    for name, v in head.items():
        if name.startswith(("optim.", "kfac.")) or v["dtype"] not in ("F32", "F64"):
            continue
        a = array.array("f" if v["dtype"] == "F32" else "d")
        a.frombytes(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
        out[name] = (v["shape"], a)
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
if set(a) != set(b) or any(a[k][0] != b[k][0] for k in a):
    print("the checkpoints hold different tensors")
    sys.exit(1)
worst, where, same = 0.0, "", 0
for k in sorted(a):
    x, y = a[k][1], b[k][1]
    if not all(math.isfinite(v) for v in x) or not all(math.isfinite(v) for v in y):
        print(f"non-finite values in {k}")
        sys.exit(1)
    scale = max((abs(v) for v in x), default=0.0)
    diff = max((abs(p - q) for p, q in zip(x, y)), default=0.0)
    same += diff == 0
    r = diff / scale if scale > 0 else diff
    if r >= worst:
        worst, where = r, k
print(f"max relative difference {worst:.2e} ({where}); {same} of {len(a)} parameter tensors identical")
sys.exit(0 if worst <= tol else 1)
