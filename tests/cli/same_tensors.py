#!/usr/bin/env python3
"""same_tensors.py A B: exit 0 when the safetensors files A and B hold the same tensors (name,
dtype, shape and bytes; the metadata is not compared), printing "N tensors, D differ"."""
import json
import struct
import sys


def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items()}


a, b = load(sys.argv[1]), load(sys.argv[2])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(f"{len(a)} tensors, {len(diff)} differ" + (f": {diff[:5]}" if diff else ""))
sys.exit(1 if diff or not a else 0)
