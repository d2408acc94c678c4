"""The parquet reader against files written at test time by an independent
writer: parquet-wasm (arrow-rs compiled to WebAssembly) from npm, pinned.
Every supported codec (none, snappy, gzip, zstd) x data page v1/v2 x
dictionary on/off, row groups and many small pages, optional columns with
nulls; every value of every column is compared, from the first row and
from rows inside a row group (the skip path).  Files that use brotli,
LZ4_RAW or the DELTA encodings must be refused with the feature named.

The npm packages are installed once into --work/node_modules
(--prefer-offline: npm's cache serves them when the registry is out of
reach).  Without node/npm, or when neither cache nor registry has them,
the test is skipped (exit 77) saying why.

With --bin, the urls source also reads an npm-written parquet URL list
(snappy, pages v2, row groups of 10 cut by units of 8, a DataComp-style
list<list<float64>> column among the flat ones) and downloads its images
from a loopback server: nulls become missing_field, every other row a
sample whose image, caption and saved columns match the file (an int64
beyond 2^53 exactly, a BINARY column's bytes that are not UTF-8 in
`raw_hex`, uint64 and uint32 values above the signed ranges unchanged);
naming the list column in save_cols is a spec error that names
it."""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))

PACKAGES = ["parquet-wasm@0.6.1", "apache-arrow@17.0.0"]

p = argparse.ArgumentParser()
p.add_argument("--pq-dump", required=True)
p.add_argument("--work", required=True)
p.add_argument("--bin", help="the vlmcurate CLI: also run the urls source over parquet")
a = p.parse_args()
os.makedirs(a.work, exist_ok=True)
if not shutil.which("node") or not shutil.which("npm"):
    print("SKIP: node and npm are needed to write the parquet test files")
    sys.exit(77)
mods = os.path.join(a.work, "node_modules")
if not all(os.path.isdir(os.path.join(mods, x.rsplit("@", 1)[0])) for x in PACKAGES):
    # A registry that cannot be reached but does not refuse (a firewall that
    # drops packets) must end in a skip too, not in a hang or a traceback.
    try:
        r = subprocess.run(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund",
                            "--no-save", "--fetch-timeout=60000", "--fetch-retries=1",
                            "--prefix", a.work] + PACKAGES,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        r = subprocess.CompletedProcess(e.cmd, 124, "", "npm install timed out after 300 s")
    if r.returncode != 0:
        print("SKIP: npm could not install %s:\n%s" % (" ".join(PACKAGES), r.stderr[-2000:]))
        sys.exit(77)
files = os.path.join(a.work, "files")
shutil.rmtree(files, ignore_errors=True)
os.makedirs(files)
writer = os.path.join(os.path.dirname(__file__), "..", "tools", "pq_write.mjs")
srv = None
if a.bin:
    import http_faults
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del os.environ[k]
    srv = http_faults.Servers()
base = ["http://127.0.0.1:%d" % srv.port] if srv else []
subprocess.run(["node", writer, mods, files] + base, check=True, timeout=300)
exp = json.load(open(os.path.join(files, "expected.json")))
failed = 0


def check(cond, what):
    global failed
    if not cond:
        failed += 1
        print("FAILED:", what)
    else:
        print("ok:", what)


def dump(name, first=None, count=None):
    cmd = [a.pq_dump, os.path.join(files, name)]
    if first is not None:
        cmd.append(str(first))
    if count is not None:
        cmd.append(str(count))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


want_rows = [dict(r, id=int(r["id"])) for r in exp["rows"]]
assert len(exp["ok"]) == 17, "the writer made every codec x page version x dictionary file"
for name in exp["ok"]:
    for first, count in [(None, None), (1234, 300), (len(want_rows) - 1, 10)]:
        r = dump(name, first, count)
        if r.returncode != 0:
            check(False, "%s read from row %s: %s" % (name, first, r.stderr.strip()))
            continue
        lines = r.stdout.splitlines()
        head = json.loads(lines[0])
        rows = [json.loads(x) for x in lines[1:]]
        lo = first or 0
        want = want_rows[lo:lo + count if count else None]
        bad = [i for i, (x, y) in enumerate(zip(rows, want)) if x != y]
        check(head["rows"] == len(want_rows) and [c["name"] for c in head["columns"]] == exp["columns"]
              and len(rows) == len(want) and not bad,
              "%s from row %d: %d rows, every value equal%s" %
              (name, lo, len(want), "" if not bad else " (first difference at row %d: %r != %r)"
               % (lo + bad[0], rows[bad[0]], want[bad[0]])))
for name, feature in exp["refuse"].items():
    r = dump(name)
    check(r.returncode == 2 and "parquet feature not supported" in r.stderr and feature in r.stderr
          and "[unsupported_format]" in r.stderr,
          "%s refused naming %s (%s)" % (name, feature, r.stderr.strip().splitlines()[0]
                                         if r.stderr.strip() else "no message"))
n_checks = len(exp["ok"]) * 3 + len(exp["refuse"])
if srv:
    import pipeline_e2e as pe
    spec = {"sources": [{"name": "pq", "type": "urls", "files": "urls.parquet", "url_col": "URL",
                         "caption_col": "TEXT",
                         "save_cols": ["similarity", "hash", "raw", "u64", "u32"],
                         "urls_per_unit": 8,
                         "fetch": {"concurrency": 8, "timeout_s": 10}}],
            "stages": [{"stage": "write"}], "output": {"dir": "out", "prefix": "pq"}}
    spec_path = pe.write_spec(os.path.join(files, "spec.json"), spec)
    out = os.path.join(a.work, "out")
    shutil.rmtree(out, ignore_errors=True)
    try:
        r = subprocess.run([a.bin, "run", spec_path, "--threads", "2", "--out", out],
                           capture_output=True, text=True, timeout=300)
        spec["sources"][0]["save_cols"] = ["face_bboxes"]
        nested_spec = pe.write_spec(os.path.join(files, "spec-nested.json"), spec)
        rn = subprocess.run([a.bin, "run", nested_spec, "--out", out + "-nested"],
                            capture_output=True, text=True, timeout=60)
    finally:
        srv.close()
    want = json.load(open(os.path.join(files, "urls.json")))
    check(r.returncode == 0, "the urls source runs over an npm-written parquet list (%s)"
          % r.stderr[-300:].strip())
    led = {e["index"]: e for e in pe.ledger(out)} if r.returncode == 0 else {}
    got = {}
    for shard in pe.shards(out, "pq") if r.returncode == 0 else []:
        for _, fields in pe.read_samples(shard):
            meta = pe.sample_json(fields)
            # Bytes that are not UTF-8 come back exactly from raw_hex.
            raw = meta.get("raw_hex") or meta.get("raw", "").encode().hex()
            got[meta["url"]] = (pe.main_image(fields)[1], fields.get("txt"), meta.get("similarity"),
                               meta.get("hash"), raw, meta.get("u64"), meta.get("u32"))
    bad = []
    for i, url in enumerate(want["URL"]):
        e = led.get(i, {})
        if url is None:
            ok_row = e.get("state") == "error" and e.get("reason") == "missing_field"
        else:
            ok_row = e.get("state") == "written" and got.get(url) == (
                http_faults.make_image(i, "jpg"), want["TEXT"][i].encode(), want["similarity"][i],
                int(want["hash"][i]), want["raw"][i], int(want["u64"][i]), want["u32"][i])
        if not ok_row:
            bad.append(i)
    check(len(led) == 30 and not bad,
          "30 parquet rows: nulls are missing_field, every other row is written with its image, "
          "caption and saved columns (bad rows: %s)" % bad[:5])
    check(rn.returncode == 2 and "column 'face_bboxes' is a nested or repeated field" in rn.stderr,
          "a list column in save_cols is a spec error naming it (%s)" % rn.stderr.strip()[-200:])
    n_checks += 3
print("%d passed, %d failed" % (n_checks - failed, failed))
sys.exit(1 if failed else 0)
