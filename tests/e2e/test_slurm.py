"""--executor slurm on a real Slurm: scripts/slurm-local.sh starts a private
munged, slurmctld and two slurmd (nodes n1, n2 on localhost) under the
test's folder; no mock of sbatch or squeue.  Three webdataset sources made
here with tarfile (a in two tar files, b, c; the same images recur across
the tars), a caption filter, dedup (a global stage with 4 reduce parts) and
a concat mixture (another global stage): three rounds, so r0-map ->
r0-reduce -> r0-plan -> r1-map -> r1-plan -> r2-map -> plan -> write ->
finish job arrays chained by afterok.  Expected:
- --dry-run prints the sbatch scripts (array over the 4 input units, the
  options given) and submits nothing;
- the Slurm run's output equals `run --threads 2` byte for byte, with
  duplicates dropped by dedup;
- fault: the last r0-map array task is scancelled while queued; the later
  phases never start (afterok), `status` counts 3 of 4 r0-map tasks done and
  the last one cancelled before it started (its log named), the later
  phases cancelled (not pending); the same command again resubmits only that task
  (r0-map array = that index) and completes with the same bytes, every input
  sample once in the ledger.
Faults of running tasks: slurm_faults.py.
Exit 77 (skipped) when Slurm cannot be started on this machine.  The
daemons are stopped at the end, also on failure."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import slurm_e2e as se  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
se.make_inputs(args.tmp)

spec = {"sources": [{"name": "a", "type": "webdataset", "urls": "a{0..1}.tar"},
                    {"name": "b", "type": "webdataset", "urls": "b.tar"},
                    {"name": "c", "type": "webdataset", "urls": "c.tar"}],
        "stages": [{"stage": "ingest"},
                   {"stage": "filter", "defaults": False,
                    "filters": [{"name": "cap_words", "min": 3}]},
                   {"stage": "dedup", "partitions": 4},
                   {"stage": "reshard", "mix": "concat", "shuffle": "none"},
                   {"stage": "write"}],
        "output": {"dir": "out", "prefix": "sl", "samples_per_shard": 3}}
spec_path, ref, cluster = se.prepare(args, spec)
env = cluster.env
OPTS = ["--executor", "slurm", "--partition", "debug", "--mem", "300M", "--cpus-per-task", "1",
        "--time", "10:00", "--max-running", "1", "--sbatch-line", "--comment=vc-test"]


def run_slurm(out, extra=()):
    return subprocess.run([args.bin, "run", spec_path, "--out", out] + OPTS + list(extra),
                          capture_output=True, text=True, env=env)


queue, wait_done, status = cluster.queue, cluster.wait_done, cluster.status
task_log = se.task_logs
cluster.start()
try:
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                           env=env).stdout.split()
    vctest.expect(nodes == ["n1", "n2"], "two nodes on this host: %s" % nodes)

    dry = os.path.join(args.tmp, "dry")
    # --account and --qos only here: this cluster keeps no accounts.
    logs = os.path.join(args.tmp, "dry-logs")
    d = run_slurm(dry, ["--dry-run", "--account", "acct-x", "--qos", "qos-x", "--logs", logs])
    vctest.expect(d.returncode == 0, "--dry-run runs: %s" % d.stderr[-2000:])
    vctest.expect("#SBATCH --array=0-3%1" in d.stdout and "#SBATCH --partition=debug" in d.stdout
                  and "#SBATCH --mem=300M" in d.stdout and "#SBATCH --comment=vc-test" in d.stdout
                  and "#SBATCH --cpus-per-task=1" in d.stdout
                  and "#SBATCH --time=10:00" in d.stdout
                  and "#SBATCH --account=acct-x" in d.stdout and "#SBATCH --qos=qos-x" in d.stdout
                  and "#SBATCH --output=%s/r0-map-%%a.log" % logs in d.stdout,
                  "--dry-run prints the r0-map script with the options")
    phases = re.findall(r"^# ([\w-]+):", d.stdout, re.M)
    vctest.expect(phases == ["r0-map", "r0-reduce", "r0-plan", "r1-map", "r1-plan", "r2-map",
                             "plan"],
                  "dry run phases in order: %s" % phases)
    vctest.expect(not queue() and not os.path.exists(os.path.join(dry, "_work", "slurm")),
                  "--dry-run submits nothing")

    # The whole run.
    whole = os.path.join(args.tmp, "whole")
    s = run_slurm(whole)
    vctest.expect(s.returncode == 0 and "vlmcurate status" in s.stdout,
                  "submission returns at once: %s %s" % (s.stdout, s.stderr[-2000:]))
    again = run_slurm(whole)
    # Refused by the queue check, or by the lock when one of the run's tasks
    # holds it at that moment.
    vctest.expect(again.returncode == 2 and ("still queued" in again.stderr
                                             or "is in use" in again.stderr),
                  "a second submission while jobs are queued is refused: %s" % again.stderr)
    vctest.expect(wait_done(whole), "the job chain wrote run.json\n" + task_log(whole) +
                  status(whole))
    pe.compare_trees(ref, whole, "--executor slurm vs --threads 2")
    n_shards = len([f for f in os.listdir(ref) if f.endswith(".tar")])
    dups = [e for e in pe.ledger(whole) if e.get("reason") == "duplicate"]
    vctest.expect(dups and all(e.get("stage") == "dedup" for e in dups),
                  "dedup dropped %d duplicates (its 4 reduce parts ran as the r0-reduce array)"
                  % len(dups))
    st = status(whole)
    vctest.expect(all(re.search(r"^%s\s+%d/%d committed" % (p, n, n), st, re.M)
                      for p, n in [("r0-map", 4), ("r0-reduce", 4), ("r0-plan", 1),
                                   ("r1-map", 4), ("r1-plan", 1), ("r2-map", 4), ("plan", 1),
                                   ("write", n_shards), ("finish", 1)]) and "complete" in st
                  and all(re.search(r"^slurm %s\s+%d done, 0 running, 0 pending, 0 failed, 0 "
                                    r"cancelled, 0 not submitted; [\d.]+ samples/s$" % (p, n),
                                    st, re.M)
                          for p, n in [("r0-map", 4), ("r1-map", 4), ("write", n_shards)]),
                  "status: every phase committed\n" + st)

    # Fault: the last r0-map task cancelled while queued behind --max-running 1.
    # Submitted held and released after the scancel: otherwise tasks 0-2
    # run meanwhile, and a test process stalled for their few seconds
    # (a loaded machine) would cancel task 3 after it started.
    fault = os.path.join(args.tmp, "fault")
    s = run_slurm(fault, ["--sbatch-line", "--hold"])
    m = re.search(r"submitted r0-map: job (\d+)", s.stderr)
    vctest.expect(s.returncode == 0 and m, "fault run submitted: %s" % s.stderr[-2000:])
    subprocess.run(["scancel", "%s_3" % m.group(1)], env=env, check=True)
    cluster.release(fault)
    vctest.expect(not wait_done(fault), "the cancelled task stops the chain: no run.json")
    st = status(fault)
    # Cancelled before it ran, and the phases after it cancelled by Slurm
    # (afterok can no longer be met): none of them is mistaken for pending.
    vctest.expect(re.search(r"^r0-map\s+3/4 committed", st, re.M)
                  and re.search(r"^r0-plan\s+0/1 committed", st, re.M)
                  and re.search(r"^slurm r0-map\s+3 done, 0 running, 0 pending, 0 failed, "
                                r"1 cancelled, 0 not submitted; [\d.]+ samples/s$", st, re.M)
                  and re.search(r"^    cancelled r0-map 3: \S+/r0-map-3.log \(job %s_3, never "
                                r"started" % m.group(1), st, re.M)
                  and all(re.search(r"^slurm %s\s+0 done, 0 running, 0 pending, 0 failed, "
                                    r"1 cancelled, 0 not submitted$" % p, st, re.M)
                          for p in ("r0-plan", "plan")),
                  "status after the cancel: r0-map 3 of 4 done, one cancelled\n" + st)
    s = run_slurm(fault)
    vctest.expect(s.returncode == 0 and "submitted r0-map: job" in s.stderr and
                  "1 of 4 tasks" in s.stderr, "the rerun resubmits one r0-map task: " + s.stderr)
    script = open(os.path.join(fault, "_work", "slurm", "r0-map.sh")).read()
    vctest.expect("#SBATCH --array=3%1\n" in script, "r0-map array of the rerun = index 3")
    vctest.expect(wait_done(fault), "the rerun completes\n" + task_log(fault))
    pe.compare_trees(ref, fault, "cancelled + rerun vs --threads 2")
    seen = [(e["file"], e["index"]) for e in pe.ledger(fault)]
    want = se.every_input_sample()
    vctest.expect(sorted(seen) == want, "every input sample once in the ledger (%d)" % len(seen))

finally:
    cluster.stop()
print("PASS")
