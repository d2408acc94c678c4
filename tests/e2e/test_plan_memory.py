"""PLAN and FINISH keep no per-record table in memory: with "memory_mb": 4
their peak RSS does not grow with the run; nor does a whole run with a
`dedup` stage, whose plan step reads the round's records from disk and
holds only the samples a duplicate pair names: at 10,000 and 60,000 input
samples (every odd sample repeats its predecessor's caption, every 101st
the one 3 before: ~4,400 and ~27,000 duplicates) the two runs' peaks
differ by less than 16 MB (the design that held the round's records grew
by ~0.9 KB per record, ~45 MB here).  Rerun alone, dedup's plan step
(`r0-plan`) and FINISH each grow by less than 10 MB from the one to the
other, and write the same bytes: the drops go to a file line by line
(`_work/r0-drops.jsonl`) and FINISH reads them back as a stream (the
design that held them, in the plan step's nodes and drop lines and again
in FINISH, grew by ~1.6 KB and ~0.8 KB per duplicate: ~36 and ~18 MB
here).  PLAN and FINISH of a run without dedup are each rerun alone on a
finished run (`vlmcurate task OUT plan 0`, then `finish 0`, after removing
its commit) and measured with getrusage (os.wait4) at 10,000 and at 100,000
input samples: the two differ by less than 16 MB (the design that held
every record grew by ~0.5 KB per kept record, ~40 MB here).  The reruns
write the same plan and ledger bytes as the run did.

The output is what the inputs alone say (tars written here, read back
with tarfile): every sample whose caption has two words or more is
written, in input order, with its caption, under keys made unique by the
README's rule computed here (the first use keeps the key, later ones get
_1, _2, ... skipping keys already given), with repeated keys and keys
that look suffixed ("r3_1") so renames cascade; the same bytes as a run
with the default budget."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
PER_TAR = 5000


def key(i):
    if i % 5 == 0:
        return "r%d" % (i % 40)           # repeats
    if i % 13 == 0:
        return "r%d_1" % (i % 7)          # what a rename of r0..r6 would be
    return "s%07d" % i


def caption(i):
    return b"short" if i % 9 == 0 else b"caption %d" % i


def dup_caption(i):
    """Every odd sample repeats its predecessor's caption, every 101st
    (even) one the caption of the sample 3 before it."""
    if i % 2 == 1:
        return caption(i - 1)
    return caption(i - 3) if i % 101 == 0 and i >= 3 else caption(i)


def make(folder, n, memory_mb, dedup=False):
    text_of = dup_caption if dedup else caption
    urls = pe.write_tiny_tars(folder, n, PER_TAR, lambda i: [(key(i) + ".txt", text_of(i))])
    spec = {"sources": [{"name": "tiny", "type": "webdataset", "urls": urls}],
            "stages": [{"stage": "ingest"},
                       {"stage": "filter", "defaults": False,
                        "filters": [{"name": "cap_words", "min": 2}]},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "m", "samples_per_shard": 3000}}
    if dedup:
        spec["stages"].insert(2, {"stage": "dedup", "text": {"minhash": False},
                                  "memory_mb": 4, "partitions": 4})
    if memory_mb:
        spec["memory_mb"] = memory_mb
    return pe.write_spec(os.path.join(folder, "spec.json"), spec)


def duplicates(n):
    """The samples dedup drops, by the README's rule: of equal captions
    (all of one source and length) the smallest key stays, then the
    earliest sample.  Sample -> the kept one."""
    groups = {}
    for i in range(n):
        if dup_caption(i) != b"short":
            groups.setdefault(dup_caption(i), []).append(i)
    dup = {}
    for members in groups.values():
        kept = min(members, key=lambda i: (key(i), i))
        dup.update({i: kept for i in members if i != kept})
    return dup


def expected(n, dropped=None):
    text_of = caption if dropped is None else dup_caption
    taken, want = set(), []
    for i in range(n):
        if text_of(i) == b"short" or i in (dropped or ()):
            continue
        k = out = key(i)
        s = 1
        while out in taken:
            tail = "_%d" % s
            out = k[:64 - len(tail)] + tail
            s += 1
        taken.add(out)
        want.append((out, text_of(i)))
    return want


peaks = {}
for n in (10000, 100000):
    folder = os.path.join(args.tmp, "n%d" % n)
    shutil.rmtree(folder, ignore_errors=True)
    spec = make(folder, n, 4)
    out = os.path.join(folder, "out")
    pe.run_spec(args, spec, out, threads=2)
    plan_kb = pe.rerun_alone(args, out, "plan", "_work/plan.json", ["_work/plan-slices.bin"])
    finish_kb = pe.rerun_alone(args, out, "finish", "run.json", ["ledger.jsonl", "wids-index.json"])
    peaks[n] = (plan_kb, finish_kb)
    got = [(k, f.get("txt")) for p in pe.shards(out, "m") for k, f in pe.read_samples(p)]
    want = expected(n)
    vctest.expect(got == want, "n=%d: %d samples written in input order under the expected "
                  "keys (want %d; first difference at %s)" %
                  (n, len(got), len(want),
                   next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)))
    vctest.expect(sum(1 for k, _ in want if k.startswith("r") and k.count("_") >= 1) > 100,
                  "n=%d: renames happen" % n)
    if n == 100000:
        # The budget changes how PLAN sorts, never what it writes.
        dflt = os.path.join(args.tmp, "dflt")
        shutil.rmtree(dflt, ignore_errors=True)
        spec_d = make(dflt, n, None)
        pe.run_spec(args, spec_d, os.path.join(dflt, "out"), threads=1)
        pe.compare_trees(out, os.path.join(dflt, "out"), "memory_mb 4 vs the default")

# A whole run with dedup: its memory does not follow the round's records,
# nor do its plan step's and FINISH's follow the duplicates.
run_peaks, dedup_peaks = {}, {}
for n in (10000, 60000):
    folder = os.path.join(args.tmp, "d%d" % n)
    shutil.rmtree(folder, ignore_errors=True)
    spec = make(folder, n, 4, dedup=True)
    out = os.path.join(folder, "out")
    run_peaks[n] = pe.peak_kb(pe.run_cmd(args, spec, out, threads=2) + ["--quiet"])
    dup = duplicates(n)
    got = [(k, f.get("txt")) for p in pe.shards(out, "m") for k, f in pe.read_samples(p)]
    want = expected(n, dup)
    vctest.expect(len(dup) > n // 200 and got == want,
                  "dedup n=%d: %d duplicates dropped, %d samples written as expected "
                  "(want %d; first difference at %s)" %
                  (n, len(dup), len(got), len(want),
                   next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)))
    lines = [json.loads(x) for x in open(os.path.join(out, "ledger.jsonl"))]
    seen = {(x["key"], x["dup_of"]["key"]) for x in lines if x["state"] == "duplicate"}
    vctest.expect(seen == {(key(i), key(k)) for i, k in dup.items()},
                  "dedup n=%d: the ledger names each duplicate and its kept sample" % n)
    drops = [json.loads(x) for x in open(os.path.join(out, "_work", "r0-drops.jsonl"))]
    vctest.expect(len(drops) == len(dup) and
                  json.load(open(os.path.join(out, "_work", "r0-plan.json")))["n_dropped"] ==
                  len(dup), "dedup n=%d: r0-drops.jsonl holds the %d drops" % (n, len(dup)))
    dedup_peaks[n] = (pe.rerun_alone(args, out, "r0-plan", "_work/r0-plan.json",
                            ["_work/r0-drops.jsonl", "_work/r0-order.bin"]),
                      pe.rerun_alone(args, out, "finish", "run.json", ["ledger.jsonl"]))
print("whole run with dedup, peak RSS KB %d -> %d" % (run_peaks[10000], run_peaks[60000]))
small, big = dedup_peaks[10000], dedup_peaks[60000]
print("peak RSS KB dedup plan step %d -> %d, finish %d -> %d" % (small[0], big[0], small[1],
                                                                  big[1]))
vctest.expect(big[0] - small[0] < 10 * 1024,
              "dedup plan step: %d KB at 60k vs %d KB at 10k samples" % (big[0], small[0]))
vctest.expect(big[1] - small[1] < 10 * 1024,
              "FINISH with dedup: %d KB at 60k vs %d KB at 10k samples" % (big[1], small[1]))
vctest.expect(run_peaks[60000] - run_peaks[10000] < 16 * 1024,
              "run with dedup: %d KB at 60k vs %d KB at 10k samples" %
              (run_peaks[60000], run_peaks[10000]))

small, big = peaks[10000], peaks[100000]
print("peak RSS KB plan %d -> %d, finish %d -> %d" % (small[0], big[0], small[1], big[1]))
vctest.expect(big[0] - small[0] < 16 * 1024,
              "PLAN: %d KB at 100k vs %d KB at 10k samples" % (big[0], small[0]))
vctest.expect(big[1] - small[1] < 16 * 1024,
              "FINISH: %d KB at 100k vs %d KB at 10k samples" % (big[1], small[1]))
print("PASS")
