"""The same spec run from three current folders (its own, its parent with a
relative spec path, / with an absolute one) and as separate `task`s (which
read the spec's folder back resolved) writes the same bytes: the ledger's
error messages name input files relative to the spec's folder, as its
`file` does, not as this command happened to spell the folder."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
pe.demo_data(args, data, samples=40, seed=5)


def run_from(cwd, spec, out):
    r = subprocess.run([args.bin, "run", spec, "--threads", "2", "--out", out, "--quiet"],
                       cwd=cwd, capture_output=True, text=True)
    vctest.expect(r.returncode == 0, "run %s from %s: exit %d %s" % (spec, cwd, r.returncode,
                                                                    r.stderr[-2000:]))
    return out


own = run_from(data, "spec.json", os.path.join(args.tmp, "own"))
parent = run_from(args.tmp, "data/spec.json", os.path.join(args.tmp, "parent"))
root = run_from("/", os.path.join(data, "spec.json"), os.path.join(args.tmp, "root"))

# the same run as tasks, phase by phase, from yet another folder
tasks = os.path.join(args.tmp, "tasks")
status = subprocess.run([args.bin, "status", own], capture_output=True, text=True).stdout
claimed = False
for phase, n in re.findall(r"^(\S+)\s+\d+/(\d+) committed", status, re.M):
    for i in range(int(n)):
        cmd = [args.bin, "task", tasks, phase, str(i), "--quiet"]
        if not claimed:
            cmd += ["--spec", os.path.join("data", "spec.json")]
            claimed = True
        r = subprocess.run(cmd, cwd=args.tmp, capture_output=True, text=True)
        vctest.expect(r.returncode == 0, "task %s %d: %s" % (phase, i, r.stderr[-2000:]))

messages = [e["message"] for e in pe.ledger(own) if "message" in e]
named = [m for m in messages if "wds/demo-" in m or "pairs/" in m]
vctest.expect(named, "%d ledger messages name an input file" % len(named))
vctest.expect(not any(data in m or "data/" in m for m in messages),
              "no message names the spec's folder: %s" %
              [m for m in messages if data in m or "data/" in m][:3])
for other, what in ((parent, "run from the spec's parent"), (root, "run from /"),
                    (tasks, "tasks from the spec's parent")):
    pe.compare_trees(own, other, "run from the spec's folder vs %s" % what)
print("PASS")
