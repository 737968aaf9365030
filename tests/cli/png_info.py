#!/usr/bin/env python3
"""png_info.py FILE: reads a PNG with the standard library only (signature, chunk CRCs, IHDR,
the zlib stream of the IDAT chunks, every scanline's filter byte and length) and prints
"WIDTH HEIGHT CHANNELS MIN MAX" of its 8-bit gray or RGB pixels (after undoing the filters);
exits non-zero when the file is not such a PNG."""
import struct
import sys
import zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def main(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG signature")
    pos, idat, ihdr, end = 8, b"", None, False
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            sys.exit(f"{path}: bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            end = True
        pos += 12 + n
    if not ihdr or not end:
        sys.exit(f"{path}: no IHDR or IEND")
    w, h, depth, color = ihdr[:4]
    if depth != 8 or color not in (0, 2):
        sys.exit(f"{path}: not 8-bit gray or RGB (depth {depth}, color type {color})")
    ch = 1 if color == 0 else 3
    raw = zlib.decompress(idat)
    stride = w * ch
    if len(raw) != h * (stride + 1):
        sys.exit(f"{path}: {len(raw)} bytes of scanlines, expected {h * (stride + 1)}")
    prev, lo, hi = bytearray(stride), 255, 0
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b, c = prev[x], prev[x - ch] if x >= ch else 0
            line[x] = (line[x] + (0, a, b, (a + b) // 2, paeth(a, b, c))[f]) & 255
        lo, hi, prev = min(lo, min(line)), max(hi, max(line)), line
    print(w, h, ch, lo, hi)


main(sys.argv[1])
