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
the test is skipped (exit 77) saying why."""
import argparse
import json
import os
import shutil
import subprocess
import sys

PACKAGES = ["parquet-wasm@0.6.1", "apache-arrow@17.0.0"]

p = argparse.ArgumentParser()
p.add_argument("--pq-dump", required=True)
p.add_argument("--work", required=True)
a = p.parse_args()
os.makedirs(a.work, exist_ok=True)
if not shutil.which("node") or not shutil.which("npm"):
    print("SKIP: node and npm are needed to write the parquet test files")
    sys.exit(77)
mods = os.path.join(a.work, "node_modules")
if not all(os.path.isdir(os.path.join(mods, x.rsplit("@", 1)[0])) for x in PACKAGES):
    r = subprocess.run(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund",
                        "--no-save", "--prefix", a.work] + PACKAGES,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print("SKIP: npm could not install %s:\n%s" % (" ".join(PACKAGES), r.stderr[-2000:]))
        sys.exit(77)
files = os.path.join(a.work, "files")
shutil.rmtree(files, ignore_errors=True)
os.makedirs(files)
writer = os.path.join(os.path.dirname(__file__), "..", "tools", "pq_write.mjs")
subprocess.run(["node", writer, mods, files], check=True, timeout=300)
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
print("%d passed, %d failed" % (len(exp["ok"]) * 3 + len(exp["refuse"]) - failed, failed))
sys.exit(1 if failed else 0)
