"""A task's memory does not follow the size of its input unit: one
webdataset tar of N tiny samples (a caption and a json each, every 9th
caption too short for the filter) and one of 4N, run alone (`run
--threads 1`, memory_mb 1 so that PLAN's and FINISH's sorts stay at the
same budget at both sizes).  The whole run's peak RSS, and that of its
MAP task and of FINISH rerun alone, grow by less than 4 MB from N to 4N.
The design that parsed a unit's manifest whole (one cJSON node tree per
sample, ~0.7 KB each) in MAP, PLAN, REDUCE and FINISH grew by ~10 MB
here (14.0 -> 23.9 MB for the whole run); records now stream through
rR-map-U.kept / .ledger and FINISH keeps 24 bytes per sample of the unit
it writes.  Peak RSS is a high-water mark (os.wait4), not a timing: the
verdict does not depend on the machine's load.  The ledger accounts for
every sample, in input order, and the shards hold what the inputs say."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
N = 5000
GROWTH_KB = 4 * 1024


def caption(i):
    return b"short" if i % 9 == 0 else b"a tiny caption %d" % i


def members(i):
    meta = json.dumps({"url": "https://example.com/%d.jpg" % i, "width": i % 640}).encode()
    return [("k%07d.txt" % i, caption(i)), ("k%07d.json" % i, meta)]


def make(folder, n):
    urls = pe.write_tiny_tars(folder, n, n, members)
    spec = {"sources": [{"name": "tiny", "type": "webdataset", "urls": urls}],
            "stages": [{"stage": "ingest"},
                       {"stage": "filter", "defaults": False,
                        "filters": [{"name": "cap_words", "min": 2}]},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "u", "samples_per_shard": 5000},
            "memory_mb": 1}
    return pe.write_spec(os.path.join(folder, "spec.json"), spec)


peaks = {}
for n in (N, 4 * N):
    folder = os.path.join(args.tmp, "n%d" % n)
    shutil.rmtree(folder, ignore_errors=True)
    spec = make(folder, n)
    out = os.path.join(folder, "out")
    run_kb = pe.peak_kb(pe.run_cmd(args, spec, out, threads=1) + ["--quiet"])
    lines = pe.ledger(out)
    vctest.expect([x["index"] for x in lines] == list(range(n)),
                  "n=%d: one ledger line per sample, in input order" % n)
    rejected = [x["index"] for x in lines if x["state"] == "rejected"]
    vctest.expect(rejected == list(range(0, n, 9)) and
                  all(x["state"] == "written" for x in lines if x["index"] % 9),
                  "n=%d: every 9th sample rejected, the rest written" % n)
    got = [(k, f.get("txt")) for p in pe.shards(out, "u") for k, f in pe.read_samples(p)]
    vctest.expect(got == [("k%07d" % i, caption(i)) for i in range(n) if i % 9],
                  "n=%d: the shards hold the kept samples in input order" % n)
    map_kb = pe.rerun_alone(args, out, "r0-map", "_work/r0-map-000000.json",
                            ["_work/r0-map-000000.bin"])
    finish_kb = pe.rerun_alone(args, out, "finish", "run.json", ["ledger.jsonl"])
    peaks[n] = (run_kb, map_kb, finish_kb)

for what, k in (("whole run", 0), ("MAP task", 1), ("FINISH", 2)):
    small, big = peaks[N][k], peaks[4 * N][k]
    print("%s: peak RSS %d KB at %d samples, %d KB at %d" % (what, small, N, big, 4 * N))
    vctest.expect(big - small < GROWTH_KB, "%s: %d KB at %d samples vs %d KB at %d (limit +%d KB)"
                  % (what, big, 4 * N, small, N, GROWTH_KB))
print("PASS")
