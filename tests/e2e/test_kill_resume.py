"""kill -9 in the middle of a multi-task run, then the same command again:
the result is byte-identical to an uninterrupted run, the tasks committed
before the kill are not redone (their commit markers are untouched), and
no temporary file is left behind.  Killed three times: while round 0's
MAP tasks are committing, while round 1's are (the stages after the
reshard stage, which ends round 0), and while output shards are being
written.  Each rerun's run.json (and stdout) says how many input units
and shards it found done, also when a round's plan, committed, spared it
from looking at that round's units."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
pe.demo_data(args, data, samples=200, seed=13)
spec = json.load(open(os.path.join(data, "spec.json")))
spec["sources"][1]["records_per_unit"] = 5
spec["sources"][2]["records_per_unit"] = 1
for st in spec["stages"]:
    if st["stage"] == "write":  # re-encoding makes every task take a while
        st.update({"resize_mode": "keep_ratio", "image_size": 256, "encode_format": "jpg",
                   "encode_quality": 95})
spec["output"]["samples_per_shard"] = 16
spec_path = pe.write_spec(os.path.join(data, "spec-kill.json"), spec)

ref = os.path.join(args.tmp, "ref")
pe.run_spec(args, spec_path, ref, threads=2)
prefix = spec["output"]["prefix"]


def markers(out):
    work = os.path.join(out, "_work")
    return {n: os.stat(os.path.join(work, n)).st_mtime_ns for n in pe.task_markers(out)}


def shards_written(out):
    return len(pe.shards(out, prefix)) if os.path.isdir(out) else 0


# (what, when to kill, what must still be left to do at the kill)
maps0, maps1 = len(pe.task_markers(ref, 0)), len(pe.task_markers(ref, 1))
n_shards = shards_written(ref)
POINTS = (("round-0 MAP tasks commit", lambda o: len(pe.task_markers(o, 0)) >= 2,
           lambda o: len(pe.task_markers(o, 0)) < maps0),
          ("round-1 MAP tasks commit", lambda o: len(pe.task_markers(o, 1)) >= 2,
           lambda o: len(pe.task_markers(o, 1)) < maps1),
          ("output shards are written", lambda o: shards_written(o) >= 1,
           lambda o: shards_written(o) < n_shards))
for what, ready, valid in POINTS:
    out = os.path.join(args.tmp, "killed-" + what.split()[0])
    vctest.expect(pe.kill_when(args, spec_path, out, ready, valid),
                  "run killed with SIGKILL while %s" % what)
    before = markers(out)
    vctest.expect(before, "%d task commit markers survive the kill" % len(before))
    # a shard counts as done once its manifest, written after the shard, is
    committed = [n for n in os.listdir(out) if re.fullmatch(re.escape(prefix) + r"-\d{6}\.json", n)]
    skipped = {"units_skipped": len(pe.task_markers(out, 0)), "shards_skipped": len(committed)}
    pe.run_spec(args, spec_path, out, threads=2)
    vctest.expect(pe.run_json(out)["resumed"] == skipped,
                  "run.json says what the resume skipped: %s" % pe.run_json(out)["resumed"])
    after = markers(out)
    vctest.expect(all(after.get(n) == t for n, t in before.items()),
                  "rerun keeps the %d tasks committed before the kill (not redone)" %
                  len(before))
    leftovers = [os.path.join(r, n) for r, _, ns in os.walk(out) for n in ns
                 if n.endswith(".tmp")]
    vctest.expect(not leftovers, "no temporary files left: %s" % leftovers[:3])
    pe.compare_trees(ref, out, "killed while %s, rerun vs uninterrupted" % what)
    vctest.expect(pe.run_json(out)["totals"] == pe.run_json(ref)["totals"],
                  "same totals as the uninterrupted run")
# the finished run again: nothing left to do, and it says so
r = pe.run_spec(args, spec_path, ref, threads=2)
line = "resumed: %d input units and %d shards were already done" % (maps0, n_shards)
vctest.expect(line in r.stdout and pe.run_json(ref)["resumed"] ==
              {"units_skipped": maps0, "shards_skipped": n_shards},
              "a rerun of a finished run: '%s' (%s)" % (line, pe.run_json(ref)["resumed"]))
print("PASS")
