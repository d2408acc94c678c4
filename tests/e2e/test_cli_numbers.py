"""Whole-number options of every subcommand refuse what is not a number in
their range (letters, trailing characters, an empty string, zero threads, a
value past 2^63, white space or a '+' around it) as a usage error: exit 2
with a message naming the option, before any work.  `stats --threads 99999999999` used to reach OpenMP as a
wrapped count and abort in libgomp's allocator; `stats --threads abc` and
`task ... --threads abc` were taken silently as "all cores"; under ASan,
stats' refusals after a shard argument leaked its list."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
shard = os.path.join(args.tmp, "in-000000.tar")
with open(shard, "wb") as f:
    f.write(pe.tar_bytes([("a.png", vctest.png_bytes(8, 8)), ("a.txt", b"a")]))
spec = pe.write_spec(os.path.join(args.tmp, "spec.json"),
                     {"sources": [{"name": "w", "type": "webdataset", "urls": shard}],
                      "output": {"prefix": "o"}})
run_out = os.path.join(args.tmp, "run")
vctest.run(args, ["run", spec, "--out", run_out, "--quiet"])

BAD = ["abc", "", "4x", "0", "-2", "99999999999", "99999999999999999999999"]
# (command line before the value, option, values that must be refused)
CASES = [
    (["stats", shard, "--out", os.path.join(args.tmp, "st")], "--threads", BAD),
    (["stats", shard, "--out", os.path.join(args.tmp, "st")], "--phash-radius",
     ["abc", "", "32", "-1", "99999999999999999999"]),
    # A shard named before a bad option is freed on the way out (ASan).
    (["stats", shard, "--out", os.path.join(args.tmp, "st")], "--bogus", ["1"]),
    (["task", run_out, "finish", "0"], "--threads", BAD),
    (["run", spec, "--out", os.path.join(args.tmp, "r2")], "--threads", BAD),
    (["run", spec, "--out", os.path.join(args.tmp, "r2"), "--executor", "slurm", "--dry-run"],
     "--max-running", BAD),
    (["demo", "--out", os.path.join(args.tmp, "demo"), "--no-run"], "--threads", BAD),
    (["demo", "--out", os.path.join(args.tmp, "demo"), "--no-run"], "--seed",
     ["abc", "-1", "9007199254740992", "99999999999999999999"]),
    # Fractions: decimal only (strtod alone took hex, " 0.5", and the
    # engine's own copy of the check more than run's).
    (["run", spec, "--out", os.path.join(args.tmp, "r2")], "--max-error-rate",
     ["abc", "", "0x0.8", " 0.5", "0.5 ", "nan", "inf", "1.5", "-0.1", "+0.5"]),
    (["generate", "--model", FIX, "--prompt", "a"], "--temperature",
     ["abc", "0x1", " 1", "nan", "inf", "-1", "101"]),
    (["generate", "--model", FIX, "--prompt", "a"], "--max-new-tokens", BAD),
    (["generate", "--model", FIX, "--prompt", "a"], "--threads", BAD),
    (["generate", "--model", FIX, "--prompt", "a", "--temperature", "1"], "--seed",
     ["abc", "-1", "99999999999999999999"]),
    (["engine-cases", FIX, "--out", os.path.join(args.tmp, "e.safetensors")], "--threads", BAD),
]
for head, opt, values in CASES:
    for v in values:
        cmd = [args.bin] + head + [opt, v]
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
        vctest.expect(r.returncode == 2 and opt in r.stderr,
                      "%s %s %r: exit %d, stderr %r" % (head[0], opt, v, r.returncode,
                                                        r.stderr[:200]))
# task's INDEX goes through the same reader: refused with a message naming
# it (it used to have its own strtoull and answer with the usage alone).
for v in ["abc", "", "1x", "+0", " 0", "0 ", "1e3", "99999999999999999999"]:
    r = subprocess.run([args.bin, "task", run_out, "finish", v], capture_output=True, text=True,
                       errors="replace", timeout=120)
    vctest.expect(r.returncode == 2 and "INDEX wants a number" in r.stderr,
                  "task INDEX %r: exit %d, stderr %r" % (v, r.returncode, r.stderr[:200]))
# "-1" reads as an option: a usage error too.
r = subprocess.run([args.bin, "task", run_out, "finish", "-1"], capture_output=True, timeout=120)
vctest.expect(r.returncode == 2, "task INDEX -1: exit %d" % r.returncode)
# A number past the phase's tasks is refused naming the count.
r = subprocess.run([args.bin, "task", run_out, "finish", "1"], capture_output=True, text=True,
                   timeout=120)
vctest.expect(r.returncode == 2 and "no task 1" in r.stderr,
              "task finish 1: exit %d, stderr %r" % (r.returncode, r.stderr[:200]))
for made in ("st", "r2", "demo", "e.safetensors"):
    vctest.expect(not os.path.exists(os.path.join(args.tmp, made)),
                  "a refused command left %s behind" % made)
# The same options take a good value.
vctest.run(args, ["stats", shard, "--out", os.path.join(args.tmp, "ok"), "--threads", "2",
                  "--phash-radius", "31", "--no-language"])
vctest.run(args, ["task", run_out, "finish", "0", "--threads", "1"])
vctest.run(args, ["run", spec, "--out", os.path.join(args.tmp, "ok-run"), "--quiet",
                  "--max-error-rate", "0.25"])
vctest.run(args, ["run", spec, "--out", os.path.join(args.tmp, "ok-run"), "--quiet",
                  "--max-error-rate", "1e-1"])
print("ok")
