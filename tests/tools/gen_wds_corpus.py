#!/usr/bin/python3
"""Writes the seed corpus of tests/fuzz/fuzz_wds_read.c into the folder
given (tests/fuzz/corpus/wds_read): small valid, compressed, foreign,
truncated and hostile tars.  Deterministic, so rerunning changes nothing.
Trailing record padding is cut (tar readers accept that) to keep seeds
small for the fuzzer."""
import gzip
import io
import os
import subprocess
import sys
import tarfile


def tar(members, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, "a.txt"
                t.addfile(ti)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue().rstrip(b"\0")
    return raw + bytes(-len(raw) % 512 + 1024)


def f(name, data):
    return (name, data, "file")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    valid = tar([f("k0.jpg", b"\xff\xd8\xff" + bytes(60)), f("k0.txt", b"a cat"),
                 f("k0.json", b"{}"), f("k1.txt", b"two"), f("k1.0.png", b"\x89PNG")])
    seeds = {
        "valid.tar": valid,
        "valid.tar.gz": gzip.compress(valid, mtime=0),
        "truncated_member.tar": valid[:512 + 30],
        "truncated_header.tar": valid[:1024 + 200],
        "hostile_names.tar": tar([f("../evil.jpg", b"e"), f("/abs.txt", b"a"),
                                  f("a/../../b.txt", b"b"), f("ok.txt", b"ok")]),
        "links.tar": tar([("d/", b"", "dir"), ("s.jpg", b"", "sym"), f("a.txt", b"x"),
                          ("a.json", b"", "link")]),
        "foreign.tar": tar([f("./a.jpg", b"j"), f("./a.TXT", b"t"), f("__key__", b"m"),
                            f("noext", b"n"), f("a.jpg", b"again"), f("b.JPG", b"1"),
                            f("b.jpg", b"2")]),
        "pax_long.tar": tar([f("p" * 150 + ".txt", b"long")], tarfile.PAX_FORMAT),
        "gnu_long.tar": tar([f("g" * 150 + ".txt", b"long")], tarfile.GNU_FORMAT),
        "many_fields.tar": tar([f("m.f%d" % i, b"x") for i in range(20)]),
    }
    zst = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=valid,
                         stdout=subprocess.PIPE, check=True).stdout
    seeds["valid.tar.zst"] = zst
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)


if __name__ == "__main__":
    main()
