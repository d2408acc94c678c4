"""Helpers shared by the end-to-end drivers (stdlib only).

Writes small valid images without any imaging library (PNG through zlib,
a header-only JPEG), parses the common command line, and runs the CLI."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import zlib


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="path to the vlmcurate binary")
    p.add_argument("--shared", required=True, help="the shared/ folder")
    p.add_argument("--tmp", required=True, help="scratch folder, emptied first")
    a = p.parse_args()
    shutil.rmtree(a.tmp, ignore_errors=True)
    os.makedirs(a.tmp)
    return a


def png_bytes(width, height, seed=0):
    """An 8-bit RGB PNG with a deterministic pattern."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes(((x * 7 + seed) & 255, (y * 5 + seed) & 255, ((x ^ y) + seed) & 255))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b""))


def jpeg_header_only(width, height):
    """SOI, SOF0, SOS and a few scan bytes but no Huffman tables: every
    header a probe reads is valid, and a full decode must fail."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof +
            b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos + b"\x12\x34\x56\x78" +
            b"\xff\xd9")


def run(args, cmd, check=True, **kw):
    r = subprocess.run([args.bin] + cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit("command failed (%d): %s\nstdout:\n%s\nstderr:\n%s" %
                         (r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


def expect(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    print("ok:", what)


SAFETENSORS_FORMATS = {"F32": ("f", 4), "I64": ("q", 8), "U8": ("B", 1)}


def read_safetensors(path):
    """{name: (dtype, shape, values)} with values a flat tuple."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        code, size = SAFETENSORS_FORMATS[t["dtype"]]
        b, e = t["data_offsets"]
        n = (e - b) // size
        count = 1
        for d in t["shape"]:
            count *= d
        if n != count:
            raise SystemExit("FAILED: %s: %d bytes for shape %s" % (name, e - b, t["shape"]))
        out[name] = (t["dtype"], t["shape"], struct.unpack_from("<%d%s" % (n, code), data, base + b))
    return out
