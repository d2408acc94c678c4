"""Compressed shards, in and out.  The same demo shards given as .tar,
.tar.gz and .tar.zst (and a gzip stream misnamed .tar: formats go by
content) give byte-identical output shards; whole-shard gz and zst output
decompresses (Python's gzip, the zstd CLI) to exactly the uncompressed
run's shards, with no DALI index (offsets would be meaningless) and the
wids index naming the compressed files."""
import gzip
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
pe.demo_data(args, data, samples=40, seed=17)
wds = os.path.join(data, "wds")
plain = ["wds/demo-%06d.tar" % i for i in range(4)]

# Compressed copies of the same four shards, written by other tools.
with open(os.path.join(wds, "demo-000000.tar"), "rb") as f, \
        gzip.open(os.path.join(wds, "c-000000.tar.gz"), "wb") as g:
    shutil.copyfileobj(f, g)
subprocess.run(["zstd", "-q", "-f", os.path.join(wds, "demo-000001.tar"), "-o",
                os.path.join(wds, "c-000001.tar.zst")], check=True)
with open(os.path.join(wds, "demo-000002.tar"), "rb") as f, \
        gzip.open(os.path.join(wds, "c-000002.tar"), "wb") as g:  # gzip named .tar
    shutil.copyfileobj(f, g)
mixed = ["wds/c-000000.tar.gz", "wds/c-000001.tar.zst", "wds/c-000002.tar", plain[3]]


def spec(urls, compression="none"):
    return {"sources": [{"name": "web", "type": "webdataset", "urls": urls}],
            "stages": [{"stage": "ingest", "decode": True},
                       {"stage": "reshard", "shuffle": "global", "seed": 3},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "c", "samples_per_shard": 8,
                       "compression": compression}}


def run(tag, s):
    out = os.path.join(args.tmp, tag)
    pe.run_spec(args, pe.write_spec(os.path.join(data, tag + ".json"), s), out)
    return out


ref = run("plain", spec(plain))
ref_shards = pe.shards(ref, "c")
vctest.expect(len(ref_shards) >= 3, "%d shards from plain inputs" % len(ref_shards))

got = run("mixed-in", spec(mixed))
same = [os.path.basename(p) for p in ref_shards
        if open(p, "rb").read() == open(os.path.join(got, os.path.basename(p)), "rb").read()]
vctest.expect(len(same) == len(ref_shards) and len(pe.shards(got, "c")) == len(ref_shards),
              ".tar.gz, .tar.zst and gzip-named-.tar inputs: the same %d shards byte for byte" %
              len(ref_shards))

for comp, suffix in (("gz", ".tar.gz"), ("zst", ".tar.zst")):
    out = run("out-" + comp, spec(plain, comp))
    names = sorted(n for n in os.listdir(out) if n.startswith("c-") and n.endswith(suffix))
    vctest.expect(names == [os.path.basename(p) + suffix[4:] for p in ref_shards],
                  "%s output: one %s per shard" % (comp, suffix))
    for n, p in zip(names, ref_shards):
        path = os.path.join(out, n)
        if comp == "gz":
            body = gzip.open(path).read()
        else:
            body = subprocess.run(["zstd", "-dc", path], check=True,
                                  capture_output=True).stdout
        if body != open(p, "rb").read():
            raise SystemExit("FAILED: %s does not decompress to the plain run's shard" % n)
    vctest.expect(True, "%s output decompresses to the plain run's shards byte for byte" % comp)
    vctest.expect(not [n for n in os.listdir(out) if n.endswith(".idx")],
                  "%s output: no DALI index" % comp)
    wids = json.load(open(os.path.join(out, "wids-index.json")))["shardlist"]
    vctest.expect([s["url"] for s in wids] == names and
                  all(s["filesize"] == os.path.getsize(os.path.join(out, s["url"]))
                      for s in wids), "%s output: wids index names the compressed files" % comp)
print("PASS")
