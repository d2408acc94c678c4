"""`vlmcurate demo --out X` generates the sample data, runs the default
pipeline and prints where the output went and a summary whose numbers are
run.json's; `vlmcurate inspect` passes a shard it wrote (listing every
sample tarfile finds) and fails the demo's corrupt and hostile input
shards, naming the problem."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
demo_dir = os.path.join(args.tmp, "demo")
r = vctest.run(args, ["demo", "--out", demo_dir, "--threads", "2"])
out = os.path.join(demo_dir, "out")
vctest.expect(os.path.realpath(out) in r.stdout or out in r.stdout,
              "demo prints where the output went (%s)" % out)
tot = pe.run_json(out)["totals"]
vctest.expect(pe.totals_add_up(tot), "demo run totals add up: %s" % tot)
for state, word in (("input", "in(put)?"), ("written", "written"), ("error", "errors?")):
    vctest.expect(re.search(r"\b%d %s\b" % (tot[state], word), r.stdout),
                  "summary reports %d %s" % (tot[state], state))
demo = json.load(open(os.path.join(demo_dir, "demo.json")))
vctest.expect(tot["input"] == demo["wds_samples"] + demo["pairs"] + demo["docs"] + 1,
              "the demo run read every generated sample (+1 line for the corrupt shard's rest)")

shard = pe.shards(out, "demo")[0]
r = subprocess.run([args.bin, "inspect", shard], capture_output=True, text=True)
n = len(pe.read_samples(shard))
vctest.expect(r.returncode == 0 and "verdict: ok" in r.stdout,
              "inspect passes an output shard")
keys = [k for k, _ in pe.read_samples(shard)]
vctest.expect(all(k in r.stdout for k in keys), "inspect lists all %d samples" % n)

for name, problem in ((demo["corrupt_shard"], r"corrupt|truncat|damaged"),
                      (demo["hostile_shard"], r"\.\./escape|unsafe")):
    r = subprocess.run([args.bin, "inspect", os.path.join(demo_dir, name)],
                       capture_output=True, text=True)
    text = r.stdout + r.stderr
    vctest.expect(r.returncode != 0 and "verdict: invalid" in text and
                  re.search(problem, text, re.I),
                  "inspect fails %s, naming the problem" % name)
# A shard that is not there is unreadable, not damaged (inspect said
# "archive is damaged" for it).
r = subprocess.run([args.bin, "inspect", os.path.join(demo_dir, "gone.tar")],
                   capture_output=True, text=True)
vctest.expect(r.returncode == 1 and "problem: file cannot be read" in r.stdout and
              "damaged" not in r.stdout, "inspect of a missing shard: %r" % r.stdout)
# Other demo data in the same folder replaces the old run; the same data
# again resumes it.
for attempt in ("regenerated", "same again"):
    r = vctest.run(args, ["demo", "--out", demo_dir, "--samples", "12", "--quiet"])
    demo = json.load(open(os.path.join(demo_dir, "demo.json")))
    tot = pe.run_json(out)["totals"]
    vctest.expect(tot["input"] == demo["wds_samples"] + demo["pairs"] + demo["docs"] + 1,
                  "--samples 12 (%s): the run covers the new data (%d inputs)" %
                  (attempt, tot["input"]))
vctest.expect("resumed" in r.stdout, "the same demo data again resumes the finished run")
print("PASS")
