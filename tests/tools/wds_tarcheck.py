#!/usr/bin/python3
"""Independent checks of vlmcurate's webdataset output, with Python's
standard library only (the C tests call this so that a reader other than
libarchive and GNU tar looks at every byte).

  wds_tarcheck.py tar SHARD   raw ustar header checks, then tarfile's view:
                              prints "name<TAB>size<TAB>sha256" per member
  wds_tarcheck.py wids INDEX  checks a wids-shard-index-v1 file, prints
                              "url<TAB>nsamples<TAB>filesize" per shard
  wds_tarcheck.py png W H OUT writes a valid W x H RGB PNG

Exit status 1 with a message on stderr when a check fails."""
import hashlib
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vctest  # noqa: E402  (the shared PNG writer)

BLOCK = 512
RECORD = 20 * BLOCK


def fail(msg):
    sys.stderr.write("wds_tarcheck: %s\n" % msg)
    sys.exit(1)


def octal(field):
    return int(field.rstrip(b"\0 ").decode("ascii") or "0", 8)


def check_raw(data):
    """Walks the 512-byte headers: plain ustar, fixed metadata, nothing else."""
    if len(data) % RECORD:
        fail("size %d is not a multiple of the %d-byte record" % (len(data), RECORD))
    pos, names = 0, []
    while True:
        h = data[pos:pos + BLOCK]
        if len(h) < BLOCK:
            fail("no end-of-archive blocks")
        if h == bytes(BLOCK):
            if data[pos + BLOCK:pos + 2 * BLOCK] != bytes(BLOCK):
                fail("one zero block where the archive should end with two")
            if any(data[pos:]):
                fail("bytes after the end-of-archive blocks")
            return names
        stored = octal(h[148:156])
        if stored != sum(h[:148]) + 8 * 32 + sum(h[156:]):
            fail("bad header checksum at %d" % pos)
        if h[257:263] != b"ustar\0" or h[263:265] != b"00":
            fail("header at %d is not POSIX ustar (magic %r)" % (pos, h[257:265]))
        if h[156:157] != b"0":
            fail("typeflag %r at %d (pax, GNU or non-file record)" % (h[156:157], pos))
        if any(h[345:500]):
            fail("prefix field used at %d" % pos)
        if any(h[265:329]):
            fail("uname/gname not empty at %d" % pos)
        if octal(h[100:108]) != 0o644 or octal(h[108:116]) or octal(h[116:124]):
            fail("mode/uid/gid not 0644/0/0 at %d" % pos)
        if octal(h[136:148]):
            fail("mtime not 0 at %d" % pos)
        name = h[:100].rstrip(b"\0").decode("ascii")
        size = octal(h[124:136])
        names.append(name)
        pos += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK


def check_tar(path):
    data = open(path, "rb").read()
    raw_names = check_raw(data)
    rows, seen_keys, key, exts = [], set(), None, set()
    with tarfile.open(path, "r:") as t:
        for m in t:
            if m.pax_headers:
                fail("pax headers on %s" % m.name)
            if not m.isreg():
                fail("%s is not a regular file" % m.name)
            base = m.name.rsplit("/", 1)[-1]
            k, dot, ext = m.name.partition(".")
            if "/" in m.name or not dot or not k or not ext:
                fail("%s does not split into key and extension" % base)
            if k != key:
                if k in seen_keys:
                    fail("key %s is not contiguous or appears twice" % k)
                seen_keys.add(k)
                key, exts = k, set()
            if ext in exts:
                fail("extension %s twice in sample %s" % (ext, k))
            exts.add(ext)
            body = t.extractfile(m).read()
            rows.append("%s\t%d\t%s" % (m.name, m.size, hashlib.sha256(body).hexdigest()))
    if [r.split("\t")[0] for r in rows] != raw_names:
        fail("tarfile and the raw walk disagree on the members")
    print("\n".join(rows))


def check_wids(path):
    d = json.load(open(path))
    if d.get("__kind__") != "wids-shard-index-v1" or d.get("wids_version") != 1:
        fail("not a wids-shard-index-v1")
    for s in d["shardlist"]:
        if not isinstance(s["url"], str) or type(s["nsamples"]) is not int or \
                type(s["filesize"]) is not int:
            fail("bad shard entry %r" % s)
        print("%s\t%d\t%d" % (s["url"], s["nsamples"], s["filesize"]))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "tar":
        check_tar(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "wids":
        check_wids(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "png":
        open(sys.argv[4], "wb").write(vctest.png_bytes(int(sys.argv[2]), int(sys.argv[3])))
    else:
        fail("usage: wds_tarcheck.py tar SHARD | wids INDEX | png W H OUT")


if __name__ == "__main__":
    main()
