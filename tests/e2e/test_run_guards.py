"""Runs that must not succeed, or must not clash (issue 7, items 3, 4, 11
and 16).  Inputs are made here with Python's tarfile.

- lock: while another process holds the output folder's lock (flock on
  OUT/_work/.lock, taken here with fcntl) a run is refused with exit 2 and
  a message naming the holder's pid; once released the run goes through.
- status: says whether a run (its pid) or tasks hold the folder now, so a
  run in progress and one that was killed no longer look the same.
- a run that rejects every sample writes no shard, and `vlmcurate stats`
  on its folder still reports the funnel from the ledger.
- an input read by two units (here two sources) warns, naming it, and
  still runs as the spec says.
- ledger paths: the ledger names input files relative to the spec's
  folder, whatever the current folder and however the spec path is
  spelled, also when a resume from another folder mixes both runs' tasks.
- empty source: a source whose only shard holds no sample fails the run
  (exit 1) naming the source.
- max_error_rate: 1 error in 4 input samples (a shard that is no archive)
  fails a run allowed 0.2 (spec key or --max-error-rate) and passes at 0.3
  (the command line overrides the spec) and by default.
- executors: `--executor nosuch` is refused listing the known ones; the spec
  key "executor": "local" and --executor local give the default run's bytes.
- --force onto the folder that holds the spec's own input shards is
  refused (exit 2) naming one, and deletes nothing.
- a write error in the ledger (the file-size limit stands in for a full
  disk: the same write(2) failure) names the file, leaves no temporary file,
  and a rerun without the limit ends byte-identical to a clean run."""
import fcntl
import json
import os
import resource
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(data)
png = vctest.png_bytes(8, 8, 3)


def shard(name, keys):
    members = []
    for k in keys:
        members += [(k + ".png", png), (k + ".txt", b"caption of " + k.encode())]
    with open(os.path.join(data, name), "wb") as f:
        f.write(pe.tar_bytes(members))


for u in range(30):
    shard("d-%02d.tar" % u, ["s%02d%02d" % (u, i) for i in range(10)])
shard("empty.tar", [])
shard("good.tar", ["g0", "g1", "g2"])
with open(os.path.join(data, "bad.tar"), "wb") as f:
    f.write(bytes(range(256)) * 8)


def spec(name, sources, **top):
    doc = {"sources": sources, "stages": [{"stage": "ingest"}],
           "output": {"dir": "out", "prefix": "g", "samples_per_shard": 2}}
    doc.update(top)
    return pe.write_spec(os.path.join(data, name), doc)


def run(spec_path, out, extra=(), cwd=None, limit=None):
    def preexec():
        if limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([args.bin, "run", spec_path, "--out", out, "--threads", "2"] +
                          list(extra), capture_output=True, text=True, cwd=cwd,
                          preexec_fn=preexec)


many = spec("many.json", [{"name": "d", "type": "webdataset", "urls": "d-{00..29}.tar"}])

# -- lock --------------------------------------------------------------
out = os.path.join(args.tmp, "locked")
os.makedirs(os.path.join(out, "_work"))
with open(os.path.join(out, "_work", ".lock"), "w") as holder:
    fcntl.flock(holder, fcntl.LOCK_EX)
    holder.write("4242\n")
    holder.flush()
    r = run(many, out)
    vctest.expect(r.returncode == 2 and "in use by another vlmcurate run (pid 4242)" in r.stderr,
                  "a second run on a locked folder is refused (%d): %s" %
                  (r.returncode, r.stderr.strip()[-200:]))
    vctest.expect(not os.path.exists(os.path.join(out, "_work", "r0-map-000000.json")),
                  "the refused run wrote no task")
r = run(many, out)
vctest.expect(r.returncode == 0, "once the lock is released the run goes through (%d) %s" %
              (r.returncode, r.stderr[-300:]))


def status_running():
    r = subprocess.run([args.bin, "status", out], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if line.startswith("running:")]


# status tells a folder held now (a run, tasks) from one nobody works on
vctest.expect(status_running() == [], "status of a finished run: nothing running")
with open(os.path.join(out, "_work", ".lock")) as holder:
    fcntl.flock(holder, fcntl.LOCK_EX)
    vctest.expect(status_running() == ["running: vlmcurate run, pid %d" % os.getpid()],
                  "status names the pid of the run holding the folder: %s" % status_running())
    fcntl.flock(holder, fcntl.LOCK_SH)
    vctest.expect(status_running() == ["running: 1 vlmcurate task"],
                  "status counts the tasks holding the folder: %s" % status_running())
vctest.expect(status_running() == [], "once released: nothing running")

# -- ledger paths --------------------------------------------------------
clean = os.path.join(args.tmp, "clean")
vctest.expect(run("many.json", clean, cwd=data).returncode == 0, "run from the spec's folder")
files = {e["file"] for e in pe.ledger(clean)}
vctest.expect(files == {"d-%02d.tar" % u for u in range(30)},
              "ledger files are relative to the spec's folder: %s" % sorted(files)[:3])
mixed = os.path.join(args.tmp, "mixed")
vctest.expect(run("many.json", mixed, cwd=data).returncode == 0, "first run")
work = os.path.join(mixed, "_work")
for n in os.listdir(work):  # as if the first run had stopped after 10 units
    if n.startswith("r0-map-0000") and int(n[7:13]) >= 10 or n == "plan.json":
        os.unlink(os.path.join(work, n))
os.unlink(os.path.join(mixed, "ledger.jsonl"))
r = run("./data//many.json", mixed, cwd=args.tmp)
vctest.expect(r.returncode == 0, "resumed from another folder with another spelling: %s" %
              r.stderr[-300:])
pe.compare_trees(clean, mixed, "clean run vs a resume from another folder")

# -- an input listed twice -------------------------------------------------
vctest.expect("warning" not in run(many, os.path.join(args.tmp, "once")).stderr,
              "inputs listed once: no warning")
twice = spec("twice.json", [{"name": "a", "type": "webdataset", "urls": ["good.tar", "d-00.tar"]},
                            {"name": "b", "type": "webdataset", "urls": "./good.tar"}])
r = run(twice, os.path.join(args.tmp, "twice"))
vctest.expect(r.returncode == 0 and "warning: 1 input unit read what another unit reads too" in
              r.stderr and "good.tar', in source 'a' and source 'b'" in r.stderr,
              "a file read by two sources runs, with a warning naming it (%d): %s" %
              (r.returncode, r.stderr[-300:]))
vctest.expect(pe.run_json(os.path.join(args.tmp, "twice"))["totals"]["written"] == 16,
              "its samples are written twice, as the spec says")

# -- every sample rejected: no shard, and the audit says why -------------
spec_none = spec("none.json", [{"name": "good", "type": "webdataset", "urls": "good.tar"}])
with open(spec_none) as f:
    doc = json.load(f)
doc["stages"].append({"stage": "filter", "filters": [{"name": "img_width", "min": 100}]})
pe.write_spec(spec_none, doc)
none = os.path.join(args.tmp, "none")
r = run(spec_none, none)
vctest.expect(r.returncode == 0 and pe.run_json(none)["totals"]["rejected"] == 3 and
              not pe.shards(none, "g"), "a run that rejects all 3 samples writes no shard (%d)"
              % r.returncode)
r = subprocess.run([args.bin, "stats", none, "--no-language"], capture_output=True, text=True)
vctest.expect(r.returncode == 0, "vlmcurate stats on its folder runs (%d): %s" %
              (r.returncode, r.stderr[-200:]))
with open(os.path.join(none, "stats.json")) as f:
    counters = json.load(f)["groups"]["all"]["counters"]
vctest.expect(counters["funnel"]["rejected"]["count"] == 3 and
              counters["reject"]["img_width"]["count"] == 3,
              "... and reports the funnel from the ledger: %s" % counters.get("reject"))

# -- a source that yields nothing ----------------------------------------
empty = spec("empty.json", [{"name": "good", "type": "webdataset", "urls": "good.tar"},
                            {"name": "hollow", "type": "webdataset", "urls": "empty.tar"}])
r = run(empty, os.path.join(args.tmp, "empty"))
vctest.expect(r.returncode == 1 and "source 'hollow' yielded no sample" in r.stderr and
              "check its paths" in r.stderr,
              "a source with no sample fails the run (%d): %s" % (r.returncode, r.stderr[-300:]))
# "--out DIR/" is the folder DIR: the summary names its files as the user
# would write them, and a rerun without the slash resumes the same run.
good = spec("good.json", [{"name": "good", "type": "webdataset", "urls": "good.tar"}])
slash = os.path.join(args.tmp, "slash")
r = run(good, slash + "//")
vctest.expect(r.returncode == 0 and "ledger: %s/ledger.jsonl;" % slash in r.stdout and
              "//" not in r.stdout, "--out with trailing slashes (%d): %s" %
              (r.returncode, r.stdout[-300:]))
r = run(good, slash)
vctest.expect(r.returncode == 0 and "already done" in r.stdout,
              "the same folder without the slash resumes (%d): %s" %
              (r.returncode, r.stdout[-300:]))
# Every empty source is named, so that one rerun can fix them all.
empty3 = spec("empty3.json", [{"name": "hollow", "type": "webdataset", "urls": "empty.tar"},
                              {"name": "good", "type": "webdataset", "urls": "good.tar"},
                              {"name": "void", "type": "webdataset", "urls": "empty.tar"},
                              {"name": "nil", "type": "webdataset", "urls": "empty.tar"}])
r = run(empty3, os.path.join(args.tmp, "empty3"))
vctest.expect(r.returncode == 1 and "source 'hollow' yielded no sample" in r.stderr and
              "so did 'void', 'nil': check their paths" in r.stderr,
              "three empty sources are all named (%d): %s" % (r.returncode, r.stderr[-300:]))

# -- max_error_rate ------------------------------------------------------
srcs = [{"name": "good", "type": "webdataset", "urls": "good.tar"},
        {"name": "bad", "type": "webdataset", "urls": "bad.tar"}]
plain, strict = spec("rate.json", srcs), spec("strict.json", srcs, max_error_rate=0.2)
r = run(plain, os.path.join(args.tmp, "rate-default"))
vctest.expect(r.returncode == 0, "no limit by default: 1 error in 4 passes (%d)" % r.returncode)
tot = pe.run_json(os.path.join(args.tmp, "rate-default"))["totals"]
vctest.expect(tot["input"] == 4 and tot["error"] == 1, "4 input, 1 error: %s" % tot)
for what, path, extra, rc in (("--max-error-rate 0.2", plain, ["--max-error-rate", "0.2"], 1),
                              ("spec max_error_rate 0.2", strict, [], 1),
                              ("--max-error-rate 0.3 over the spec's 0.2", strict,
                               ["--max-error-rate", "0.3"], 0)):
    out = os.path.join(args.tmp, "rate-" + str(abs(hash(what))))
    r = run(path, out, extra)
    ok = r.returncode == rc and (rc == 0 or "1 of 4 input samples (25.00%) are errors" in r.stderr)
    vctest.expect(ok, "%s: exit %d (want %d) %s" % (what, r.returncode, rc, r.stderr[-200:]))
    vctest.expect(rc == 0 or not os.path.exists(os.path.join(out, "run.json")),
                  "%s: a failed run writes no run.json" % what)
r = run(plain, os.path.join(args.tmp, "rate-x"), ["--max-error-rate", "1.5"])
vctest.expect(r.returncode == 2, "--max-error-rate 1.5 is refused (%d)" % r.returncode)

# -- executors -----------------------------------------------------------
r = run(many, os.path.join(args.tmp, "nosuch"), ["--executor", "nosuch"])
vctest.expect(r.returncode == 2 and "unknown executor 'nosuch' (known: local, slurm)" in r.stderr,
              "an unknown executor is refused (%d): %s" % (r.returncode, r.stderr[-200:]))
named = spec("named.json", [{"name": "d", "type": "webdataset", "urls": "d-{00..29}.tar"}],
             executor="local")
for what, path, extra in (("spec executor local", named, []),
                          ("--executor local", many, ["--executor", "local"])):
    out = os.path.join(args.tmp, "ex-" + what.split()[0].strip("-"))
    vctest.expect(run(path, out, extra).returncode == 0, what)
    pe.compare_trees(clean, out, "default run vs " + what)

# -- --force never deletes the run's own inputs ---------------------------
# A folder of `*-NNNNNN.tar` shards given as --out with --force: those
# names are what --force clears, but here they are what the spec reads.
inbox = os.path.join(args.tmp, "inbox")
os.makedirs(inbox)
with open(os.path.join(data, "good.tar"), "rb") as f:
    good = f.read()
for n in ("in-000000.tar", "in-000001.tar"):
    with open(os.path.join(inbox, n), "wb") as f:
        f.write(good)
with open(os.path.join(inbox, "other-000000.json"), "w") as f:
    f.write("{}")  # a run's shard manifest by its name, and no input: --force may take it
own = pe.write_spec(os.path.join(inbox, "own.json"),
                    {"sources": [{"name": "in", "type": "webdataset",
                                  "urls": "in-{000000..000001}.tar"}],
                     "output": {"dir": "out"}})
r = run(own, inbox, ["--force"])
vctest.expect(r.returncode == 2 and "--force would delete" in r.stderr and
              "in-000000.tar" in r.stderr,
              "--force onto the folder of the inputs is refused naming one (%d): %s" %
              (r.returncode, r.stderr[-300:]))
vctest.expect(sorted(os.listdir(inbox)) ==
              ["_work", "in-000000.tar", "in-000001.tar", "other-000000.json", "own.json"],
              "every input is still there: %s" % sorted(os.listdir(inbox)))
r = run(own, os.path.join(args.tmp, "inbox-out"))
vctest.expect(r.returncode == 0, "the same spec into another folder runs (%d)" % r.returncode)

# -- a write error in the ledger -----------------------------------------
full = os.path.join(args.tmp, "full")
# Between the plan's slices file (~27 KB) and the ledger (~35 KB).
r = run(many, full, limit=30000)
ledger_tmp = os.path.join(full, "ledger.jsonl.tmp")
vctest.expect(r.returncode == 1 and ledger_tmp in r.stderr and "too large" in r.stderr,
              "the ledger write error names the file (%d): %s" % (r.returncode, r.stderr[-300:]))
leftovers = [os.path.join(d, n) for d, _, ns in os.walk(full) for n in ns if n.endswith(".tmp")]
vctest.expect(not leftovers, "no temporary file left: %s" % leftovers)
vctest.expect(run(many, full).returncode == 0, "rerun without the limit")
pe.compare_trees(clean, full, "clean run vs a run resumed after the write error")
print("PASS")
