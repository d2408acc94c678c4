"""Tiny webdataset samples for the executor's scale figures (README "On a
Slurm cluster", /work/coord/bench-slurm.sh): N samples of one short caption
each (KEY.txt), PER_TAR to a tar, ustar headers written by hand (tarfile
is too slow for millions), and spec.json (ingest, a caption filter that
drops every 7th sample, write: 10,000 samples per shard).

  python3 gen_tiny_wds.py DIR N [PER_TAR] [--compact] [--dups K]

--compact: the tars gzip-compressed (level 1, .tar.gz) and the shards
written zstd-compressed, so 10M samples take ~5 GB of disk instead of ~30.
--dups K: every K-th sample (index i with i % K == K - 1) repeats the
caption of the sample before it, an exact duplicate for `dedup` (K = 2:
every other sample; with the filter's 1 in 7, 3 in 7 of the input)."""
import gzip
import json
import os
import sys


def header(name, size):
    """A ustar header by hand (tarfile is too slow for millions of members)."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 0
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def main():
    argv = [a for a in sys.argv[1:] if a != "--compact"]
    compact = len(argv) < len(sys.argv) - 1
    dups = 0
    if "--dups" in argv:
        k = argv.index("--dups")
        dups = int(argv[k + 1])
        del argv[k:k + 2]
    out, n = argv[0], int(argv[1])
    per = int(argv[2]) if len(argv) > 2 else 10000
    ext = ".tar.gz" if compact else ".tar"
    os.makedirs(out, exist_ok=True)
    n_tars = (n + per - 1) // per
    for t in range(n_tars):
        parts = []
        for i in range(t * per, min(n, (t + 1) * per)):
            j = i - 1 if dups and i % dups == dups - 1 else i
            text = (b"a tiny caption number %d" % j) if j % 7 else b"short"
            parts += [header(b"s%09d.txt" % i, len(text)), text, bytes(-len(text) % 512)]
        parts.append(bytes(1024))
        data = b"".join(parts)
        name = os.path.join(out, "t-%06d%s" % (t, ext))
        with open(name, "wb") as f:
            f.write(gzip.compress(data, 1) if compact else data)
    spec = {"sources": [{"name": "tiny", "type": "webdataset",
                         "urls": "t-{000000..%06d}%s" % (n_tars - 1, ext)}],
            "stages": [{"stage": "ingest"},
                       {"stage": "filter", "defaults": False,
                        "filters": [{"name": "cap_words", "min": 2}]},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "tiny", "samples_per_shard": 10000}}
    if compact:
        spec["output"]["compression"] = "zst"
    with open(os.path.join(out, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
