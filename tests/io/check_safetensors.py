#!/usr/bin/env python3
"""Independent reader for the file that tests/io/test_safetensors.c writes.

Reads the safetensors file with nothing but json + numpy (no safetensors package), checks the
layout rules of the format and compares every tensor bit for bit with the values the C test
wrote (the same literals are repeated below). Exit status 0 = all good, 1 = a mismatch,
2 = usage. Run: python3 tests/io/check_safetensors.py FILE
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def expected():
    mean = np.array([(i - 5) * 0.25 for i in range(12)], dtype="<f4").reshape(3, 4)
    chol = np.array([0.1, -0.0, 5e-324, 1.7976931348623157e308, 1.0 / 3.0, -2.5],
                    dtype="<f8").reshape(2, 3)
    return {
        "layer0.mean": ("F32", mean),
        "layer0.chol": ("F64", chol),
        "step": ("I64", np.array(1234567890123, dtype="<i8")),
        "mask": ("U8", np.array([0, 1, 255, 7, 128], dtype="u1")),
        "empty": ("F32", np.zeros((0, 3), dtype="<f4")),
        "counts": ("I32", np.array([-7, 2147483647], dtype="<i4")),
        'odd "name"/\u00fc': ("F64", np.array([-1e-300], dtype="<f8")),
    }


def main(argv):
    if len(argv) != 2:
        print("usage: check_safetensors.py FILE", file=sys.stderr)
        return 2
    raw = open(argv[1], "rb").read()
    errors = []
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        errors.append(f"header length {n} is not a multiple of 8")
    text = raw[8:8 + n].decode("utf-8")
    if not text.rstrip(" ").endswith("}") or len(text) - len(text.rstrip(" ")) >= 8:
        errors.append("header must be a JSON object padded with fewer than 8 spaces")
    header = json.loads(text)  # strict: Python rejects what RFC 8259 rejects (but NaN)
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in meta.values()):
        errors.append("metadata values must be strings")
    kronvi = json.loads(meta.get("kronvi", "null"))
    if not isinstance(kronvi, dict) or kronvi.get("format") != "kronvi-checkpoint" \
            or kronvi.get("version") != 1 or kronvi.get("note") != "\u00e9\n":
        errors.append(f"metadata 'kronvi' wrong: {kronvi!r}")
    if meta.get("comment") != 'quote " and backslash \\ and tab \t':
        errors.append(f"metadata 'comment' wrong: {meta.get('comment')!r}")

    # offsets tile the data region in header order
    pos = 0
    for name, info in header.items():
        b, e = info["data_offsets"]
        if b != pos:
            errors.append(f"{name}: begins at {b}, expected {pos}")
        pos = e
    if pos != len(data):
        errors.append(f"tensors cover {pos} bytes of a {len(data)}-byte data region")

    want = expected()
    if sorted(header) != sorted(want):
        errors.append(f"tensor names {sorted(header)} != {sorted(want)}")
    for name, (dtype, ref) in want.items():
        info = header.get(name)
        if info is None:
            continue
        if info["dtype"] != dtype:
            errors.append(f"{name}: dtype {info['dtype']} != {dtype}")
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DTYPES[dtype]).reshape(info["shape"])
        if list(arr.shape) != list(ref.shape):
            errors.append(f"{name}: shape {arr.shape} != {ref.shape}")
        elif arr.tobytes() != ref.tobytes():
            errors.append(f"{name}: values {arr.ravel()[:6]} != {ref.ravel()[:6]}")
    for e in errors:
        print("check_safetensors.py:", e, file=sys.stderr)
    print(f"check_safetensors.py: {len(want)} tensors, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
