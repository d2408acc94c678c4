"""One task at a time (`vlmcurate task OUT PHASE INDEX`, what a cluster
array task runs) gives the bytes of `vlmcurate run`, and `vlmcurate
status` reports what is committed.  The spec has two rounds (a mixture
ends round 0, a filter runs in round 1); inputs are tars made here with
tarfile.  Every phase's tasks run in reverse order, in separate processes.
Also: a phase whose predecessors are not committed is refused (exit 1,
naming the phase it waits for); an index out of range is a usage error;
a committed task is not run again; a task is refused while a run holds
the folder (an exclusive flock, taken here with fcntl); an input file gone
after the folder was claimed fails only its own unit's task."""
import fcntl
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
for name, n in (("a", 9), ("b", 7)):
    for part in range(2):
        members = []
        for i in range(n):
            key = "%s%d%03d" % (name, part, i)
            caption = b"word" if i % 3 == 0 else b"a caption of five words"
            members += [(key + ".png", vctest.png_bytes(12, 12, i)), (key + ".txt", caption)]
        with open(os.path.join(args.tmp, "%s-%d.tar" % (name, part)), "wb") as f:
            f.write(pe.tar_bytes(members))
spec_path = pe.write_spec(os.path.join(args.tmp, "spec.json"), {
    "sources": [{"name": "a", "type": "webdataset", "urls": "a-{0..1}.tar", "weight": 2},
                {"name": "b", "type": "webdataset", "urls": "b-{0..1}.tar", "weight": 1}],
    "stages": [{"stage": "ingest"},
               {"stage": "reshard", "mix": "weighted", "stop": "all_exhausted", "seed": 5,
                "shuffle": "global"},
               {"stage": "filter", "defaults": False, "filters": [{"name": "cap_words", "min": 3}]},
               {"stage": "write"}],
    "output": {"dir": "out", "prefix": "t", "samples_per_shard": 5}})

ref, out = os.path.join(args.tmp, "ref"), os.path.join(args.tmp, "tasks")
pe.run_spec(args, spec_path, ref, threads=2)


def cli(*a):
    return subprocess.run([args.bin] + list(a), capture_output=True, text=True)


def status():
    r = cli("status", out)
    phases = [(m.group(1), m.group(2), m.group(3))
              for m in re.finditer(r"^(\S+)\s+(?:(\d+)/(\d+) committed|waiting for plan)$",
                                   r.stdout, re.M)]
    return r, phases


r = cli("status", out)
vctest.expect(r.returncode == 2 and "holds no run" in r.stderr, "status of nothing: %s" % r.stderr)
r = cli("task", out, "r0-map", "0", "--spec", spec_path, "--quiet")
vctest.expect(r.returncode == 0 and "committed" in r.stdout, "first task claims OUT: %s %s" %
              (r.stdout, r.stderr))
r = cli("task", out, "r0-map", "0", "--quiet")
vctest.expect(r.returncode == 0 and "already committed" in r.stdout, "a committed task: %s" %
              r.stdout)
r = cli("task", out, "plan", "0")
vctest.expect(r.returncode == 1 and "not ready: r0-map has 1 of 4 tasks committed" in r.stderr,
              "plan before the maps is refused: %s" % r.stderr)
r = cli("task", out, "r0-map", "4")
vctest.expect(r.returncode == 2 and "no task 4" in r.stderr, "index out of range: %s" % r.stderr)
# An index past 2^64 is a usage error, not a search for task 2^64 - 1.
r = cli("task", out, "r0-map", "99999999999999999999")
vctest.expect(r.returncode == 2 and "INDEX wants a number" in r.stderr and
              "18446744073709551615" not in r.stderr,
              "an index that overflows: %s" % r.stderr)
r = cli("task", out, "r7-map", "0")
vctest.expect(r.returncode == 2 and "r1-map" in r.stderr, "unknown phase lists them: %s" %
              r.stderr)
with open(os.path.join(out, "_work", ".lock"), "a") as holder:
    fcntl.flock(holder, fcntl.LOCK_EX)
    r = cli("task", out, "r0-map", "1")
    vctest.expect(r.returncode == 2 and "in use" in r.stderr, "refused during a run: %s" %
                  r.stderr)

# An input file gone after the submission fails its own unit's task only:
# the others, and status, re-read the spec without looking at the inputs.
b1 = os.path.join(args.tmp, "b-1.tar")
os.rename(b1, b1 + ".away")
r = cli("task", out, "r0-map", "3", "--quiet")
vctest.expect(r.returncode == 1 and "b-1.tar" in r.stderr and "r0-map 3" in r.stderr,
              "the task of the missing file fails naming it: %s" % r.stderr)
r = cli("task", out, "r0-map", "2", "--quiet")
vctest.expect(r.returncode == 0 and "committed" in r.stdout,
              "another unit's task still runs: %s" % r.stderr)
r = cli("status", out)
vctest.expect(re.search(r"^r0-map\s+2/4 committed", r.stdout, re.M),
              "status with the file gone: %s %s" % (r.stdout, r.stderr))
os.rename(b1 + ".away", b1)

r, phases = status()
names = [p[0] for p in phases]
vctest.expect(names == ["r0-map", "r0-reduce", "r0-plan", "r1-map", "plan", "write", "finish"],
              "status lists the phases: %s" % names)
vctest.expect(phases[0][1:] == ("2", "4") and r.returncode == 1 and "next: r0-map" in r.stdout,
              "status: 2 of 4 units of round 0, next r0-map: %s" % r.stdout)
ran = 0
for name in names:
    total = int(dict((p[0], p[2]) for p in status()[1])[name] or 0)
    for index in reversed(range(total)):
        r = cli("task", out, name, str(index), "--quiet")
        vctest.expect(r.returncode == 0, "task %s %d: %s" % (name, index, r.stderr.strip()))
        ran += 1
r, phases = status()
vctest.expect(r.returncode == 0 and "complete" in r.stdout and
              all(p[1] == p[2] for p in phases), "status: complete\n%s" % r.stdout)
print("%d tasks run" % ran)
pe.compare_trees(ref, out, "vlmcurate run vs one task at a time")
# Round 0's spills went once round 1 committed each unit (status above
# still counts r0-map 4/4); the plan's slices are one indexed file.
work = sorted(os.listdir(os.path.join(out, "_work")))
vctest.expect(not [f for f in work if re.match(r"r0-map-\d+\.bin$", f)] and
              len([f for f in work if re.match(r"r1-map-\d+\.bin$", f)]) == 4 and
              "plan-slices.bin" in work and not [f for f in work if f.startswith("plan-shard")],
              "_work keeps the last round's spills and one slices file: %s" % work)
# A rerun finds everything committed: round 0 is not redone for want of
# its spills.
r = cli("run", spec_path, "--out", out, "--threads", "2")
vctest.expect(r.returncode == 0 and not [f for f in os.listdir(os.path.join(out, "_work"))
                                         if re.match(r"r0-map-\d+\.bin$", f)],
              "rerun of a finished run: %s" % r.stderr[-2000:])
pe.compare_trees(ref, out, "rerun of the finished run")
vctest.expect(pe.run_json(out)["totals"] == pe.run_json(ref)["totals"], "same totals")
print("PASS")
