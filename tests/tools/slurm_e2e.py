"""What the Slurm e2e tests share: their inputs (three webdataset sources in
four tars), a throwaway cluster (scripts/slurm-local.sh: munged,
slurmctld, two slurmd on this host), and watching a run on it."""
import os
import subprocess
import sys
import time

import pipeline_e2e as pe
import vctest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "slurm-local.sh")
# Samples per tar; sources a (a0, a1), b, c: input units 0-3.
N = {"a0": 5, "a1": 5, "b": 6, "c": 4}
# How long a whole job chain may take: ~20 s on an idle 2-core machine, a
# deadline (not a sleep) with room for a machine several times slower.
WAIT_S = 300


def make_inputs(tmp, image=None):
    """Writes the four tars.  A sample's caption is one word (a cap_words
    reject) when its ordinal is a multiple of 3, except in b; image(name, i)
    may replace the 12x12 PNG (the same pictures recur across tars)."""
    for name, n in N.items():
        members = []
        for i in range(n):
            key = "%s_%03d" % (name, i)
            caption = (b"word" if i % 3 == 0 and name != "b"
                       else ("a caption for %s %d" % (name, i)).encode())
            png = (image and image(name, i)) or vctest.png_bytes(12, 12, i + 7 * len(members))
            members += [(key + ".png", png), (key + ".txt", caption)]
        with open(os.path.join(tmp, name + ".tar"), "wb") as f:
            f.write(pe.tar_bytes(members))


def every_input_sample():
    return sorted((name + ".tar", i) for name, n in N.items() for i in range(n))


def prepare(args, spec):
    """Writes SPEC, runs it locally at 2 threads (the output Slurm must equal)
    and makes the cluster: (spec path, reference folder, Cluster)."""
    spec_path = pe.write_spec(os.path.join(args.tmp, "spec.json"), spec)
    ref = os.path.join(args.tmp, "ref")
    pe.run_spec(args, spec_path, ref, threads=2)
    return spec_path, ref, Cluster(args, os.path.join(args.tmp, "cluster"))


class Cluster:
    """Started by start() (exit 77, skipped, when Slurm cannot run here);
    stop() cancels the jobs and stops the daemons."""

    def __init__(self, args, folder):
        self.args, self.folder = args, folder
        self.env = dict(os.environ, SLURM_CONF=os.path.join(folder, "slurm.conf"))

    def start(self):
        r = subprocess.run(["bash", SCRIPT, "start", self.folder, "2"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(r.stderr)
            sys.exit(77 if r.returncode == 77 else 1)

    def stop(self):
        subprocess.run(["bash", SCRIPT, "stop", self.folder], capture_output=True)

    def queue(self, limit=60):
        """The jobs still queued.  A failed squeue (slurmctld busy on a loaded
        machine) is asked again, never read as an empty queue."""
        t0 = time.time()
        while True:
            r = subprocess.run(["squeue", "-h", "-r", "-o", "%i %j %t"], capture_output=True,
                               text=True, env=self.env)
            if r.returncode == 0:
                return r.stdout.split("\n") if r.stdout.strip() else []
            if time.time() - t0 > limit:
                raise SystemExit("FAILED: squeue fails: %s" % r.stderr)
            time.sleep(0.5)

    def wait_done(self, out, limit=WAIT_S):
        """Until nothing is queued; True when run.json was written."""
        t0 = time.time()
        while time.time() - t0 < limit:
            if not self.queue():
                print("queue empty after %.1f s" % (time.time() - t0))
                return os.path.exists(os.path.join(out, "run.json"))
            time.sleep(0.3)
        raise SystemExit("FAILED: jobs still queued after %ds: %s" % (limit, self.queue()))

    def release(self, out):
        """Releases every job of the run in OUT (submitted with --hold),
        as listed in its jobs.txt ("PHASE JOBID EPOCH INDICES" lines)."""
        with open(os.path.join(out, "_work", "slurm", "jobs.txt")) as f:
            jobs = [line.split()[1] for line in f if line.strip()]
        subprocess.run(["scontrol", "release", ",".join(jobs)], env=self.env, check=True,
                       capture_output=True)

    def status(self, out):
        return vctest.run(self.args, ["status", out], check=False, env=self.env).stdout


def task_logs(out):
    """Every task log of the run in OUT, for failure messages."""
    logs = os.path.join(out, "_work", "slurm", "logs")
    return "".join("== %s\n%s" % (n, open(os.path.join(logs, n)).read())
                   for n in sorted(os.listdir(logs))) if os.path.isdir(logs) else ""
