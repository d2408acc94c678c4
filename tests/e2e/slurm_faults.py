"""Faults of --executor slurm on a real local Slurm (scripts/slurm-local.sh:
munged, slurmctld, two slurmd on this host; no mock).  One fault per ctest
entry, picked by VC_SLURM_FAULT:

  map_cancel     scancel of r0-map task 2 while it runs
  write_cancel   scancel of write task 2 while it runs: its shard's
                 temporary file out/fl-000002.tar.tmp is a FIFO made right
                 after the submission, so the task's process blocks in
                 open(2) creating it, mid-run and for as long as the test
                 wants, however fast or loaded the machine
  kill9          kill -9 of r0-map task 2's vlmcurate process
  oom            every task under --mem 60M: r0-map task 2 decodes 192 MB
                 images and is killed by Slurm's memory polling
                 (OverMemoryKill; no cgroups here).  Its process is
                 SIGSTOPped once its resident size passes twice the limit:
                 it is over the limit only in bursts of ~0.3 s, which the
                 once-a-second polls could all miss (seen on a clean-clone
                 CI); frozen, it stays over until the next poll kills it
                 (a poll may also kill it first, between the limit and
                 twice it: the verdict is the same)
  missing_input  c.tar (unit 3) renamed away after the submission: the spec
                 load of `run` checks inputs, a task's does not, so r0-map
                 task 3 alone fails, its log naming c.tar; back in place
                 before the rerun

Unit 2 (source b) holds three 8000x8000 PNGs made here with zlib, which
ingest and the img_decodes filter decode into memory (192 MB each) and the
write stage resizes, all in r0-map task 2, so it runs for seconds and holds
over 100 MB; the other units and every write task are small (write 2 copies
three resized samples in milliseconds: hence the FIFO).  After the fault:
nothing of the task is committed, the later phases never ran, `status`
lists the task as failed or cancelled with its log and why; the same
command again (with enough memory for oom) resubmits only that task and
completes; the output equals `run --threads 2` byte for byte and every input
sample is in the ledger exactly once.  Exit 77 (skipped) when Slurm cannot
be started here."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import slurm_e2e as se  # noqa: E402
import vctest  # noqa: E402

FAULT = os.environ.get("VC_SLURM_FAULT", "")
FAULTS = ("map_cancel", "write_cancel", "kill9", "oom", "missing_input")
if FAULT not in FAULTS:
    raise SystemExit("VC_SLURM_FAULT must be one of %s" % ", ".join(FAULTS))
args = vctest.parse_args()


def big_png(side):
    """A solid RGB PNG: a few KB on disk, side*side*3 bytes decoded."""
    def chunk(kind, data):
        body = kind + data
        return (len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big"))
    raw = (b"\x00" + b"\x80\x40\x20" * side) * side
    ihdr = side.to_bytes(4, "big") * 2 + bytes((8, 2, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1)) +
            chunk(b"IEND", b""))


BIG = big_png(8000)
se.make_inputs(args.tmp, lambda name, i: BIG if name == "b" and i < 3 else None)
MEM_MB = 60

spec = {"sources": [{"name": "a", "type": "webdataset", "urls": "a{0..1}.tar"},
                    {"name": "b", "type": "webdataset", "urls": "b.tar"},
                    {"name": "c", "type": "webdataset", "urls": "c.tar"}],
        "stages": [{"stage": "ingest", "decode": True},
                   {"stage": "filter", "defaults": False,
                    "filters": [{"name": "cap_words", "min": 3}, {"name": "img_decodes"}]},
                   {"stage": "write", "resize_mode": "keep_ratio", "image_size": 256}],
        "output": {"dir": "out", "prefix": "fl", "samples_per_shard": 3}}
spec_path, ref, cluster = se.prepare(args, spec)
env = cluster.env
out = os.path.join(args.tmp, "out")
logs = os.path.join(out, "_work", "slurm", "logs")


def run_slurm(mem, extra=()):
    return subprocess.run([args.bin, "run", spec_path, "--out", out, "--executor", "slurm",
                           "--partition", "debug", "--mem", mem, "--cpus-per-task", "1",
                           "--max-running", "1"] + list(extra), capture_output=True, text=True,
                          env=env)


queue = cluster.queue


def wait_done():
    return cluster.wait_done(out)


def wait_start(phase, index, limit=se.WAIT_S):
    """Until the task's log says it started; its job id (ARRAYJOB_INDEX)."""
    log = os.path.join(logs, "%s-%d.log" % (phase, index))
    t0 = time.time()
    while time.time() - t0 < limit:
        if os.path.exists(log):
            m = re.search(r"vlmcurate-task: start job (\d+_\d+)", open(log).read())
            if m:
                return m.group(1)
        time.sleep(0.05)
    raise SystemExit("FAILED: %s %d did not start\n%s" % (phase, index, queue()))


def task_pid(phase, index, limit=60, pause=0.05):
    """The pid of `vlmcurate task OUT PHASE INDEX`, found in /proc."""
    want = [args.bin, "task", out, phase, str(index)]
    t0 = time.time()
    while time.time() - t0 < limit:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
            except OSError:
                continue
            if [c.decode(errors="replace") for c in cmd[:5]] == want:
                return int(pid)
        time.sleep(pause)
    raise SystemExit("FAILED: no process for %s %d" % (phase, index))


def rss_kb(pid):
    """The process's resident size in KiB, 0 once it is gone."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop_when(phase, index, ready=lambda pid: True):
    """A thread that SIGSTOPs the task's process once ready(pid) holds,
    polling every 2 ms from the moment it appears (r0-map task 2 decodes
    for seconds, so the polls find it before it can commit however fast
    the machine).  Its result list gets the pid."""
    got = []

    def watch():
        pid = task_pid(phase, index, limit=se.WAIT_S, pause=0.002)
        t0 = time.time()
        while not ready(pid):
            if time.time() - t0 > se.WAIT_S or not os.path.exists("/proc/%d" % pid):
                return
            time.sleep(0.002)
        os.kill(pid, signal.SIGSTOP)
        got.append(pid)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    return th, got


def blocked_on(pid, limit=se.WAIT_S):
    """Whether the process comes to sleep in openat(2) (its number on
    x86-64 and aarch64) within `limit` seconds: in a FIFO's open, which
    waits for a reader."""
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            call = open("/proc/%d/syscall" % pid).read().split()
            state = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "S" and call[:1] in (["257"], ["56"]):
            return True
        time.sleep(0.05)
    return False


def status():
    return cluster.status(out)


def log_text():
    return se.task_logs(out)


cluster.start()
try:
    t0 = time.time()
    c_tar = os.path.join(args.tmp, "c.tar")
    # Held until the file is gone (a state, not a --begin delay that a
    # stalled test process could outlast).
    s = run_slurm("%dM" % MEM_MB if FAULT == "oom" else "1G",
                  ["--sbatch-line", "--hold"] if FAULT == "missing_input" else [])
    vctest.expect(s.returncode == 0, "submitted: %s" % s.stderr[-2000:])
    if FAULT == "missing_input":
        os.rename(c_tar, c_tar + ".away")
        cluster.release(out)
    # Write 2 runs only after the whole map phase (seconds: r0-map task 2),
    # and the submission made OUT's spec marker, so the FIFO may be there.
    fifo = os.path.join(out, "fl-000002.tar.tmp")
    if FAULT == "write_cancel":
        os.mkfifo(fifo)
    phase, index = {"write_cancel": ("write", 2), "missing_input": ("r0-map", 3)}.get(
        FAULT, ("r0-map", 2))
    if FAULT == "map_cancel":
        stopper = stop_when(phase, index)
    elif FAULT == "oom":
        stopper = stop_when(phase, index, lambda pid: rss_kb(pid) > 2 * MEM_MB * 1024)
    job = wait_start(phase, index)
    if FAULT == "missing_input":
        want = r"failed %s %d: \S+ \(job %s, it ran and committed nothing" % (phase, index, job)
    elif FAULT in ("map_cancel", "write_cancel"):
        # Stopped as its process appeared (map) or blocked opening the FIFO
        # (write): scancel then kills a task that is surely mid-run.
        if FAULT == "map_cancel":
            stopper[0].join(se.WAIT_S)
            vctest.expect(bool(stopper[1]), "%s %d stopped as it started" % (phase, index))
        else:
            vctest.expect(blocked_on(task_pid(phase, index)),
                          "%s %d blocks opening %s" % (phase, index, fifo))
        vctest.expect(any(line.split()[:1] == [job] and line.endswith(" R") for line in queue()),
                      "%s %d runs when cancelled: %s" % (phase, index, queue()))
        # Frozen mid-phase behind --max-running 1: status counts the tasks
        # before it done, it running, the rest pending, and gives an ETA
        # no larger than (time since submission / tasks done) per task left.
        n = 4 if phase == "r0-map" else 5
        st = status()
        bound = (time.time() - t0 + 1) / index * (n - index) + 1
        m = re.search(r"^slurm %s\s+%d done, 1 running, %d pending, 0 failed, 0 cancelled, 0 not "
                      r"submitted; [\d.]+ samples/s, ETA (\d+) s$" % (phase, index, n - 1 - index),
                      st, re.M)
        vctest.expect(m and int(m.group(1)) <= bound,
                      "status mid-phase: %d done, 1 running, %d pending, ETA <= %.0f s\n%s" %
                      (index, n - 1 - index, bound, st))
        subprocess.run(["scancel", job], env=env, check=True)
        want = r"cancelled %s %d: \S+ \(job %s, cancelled\)" % (phase, index, job)
    elif FAULT == "kill9":
        os.kill(task_pid(phase, index), signal.SIGKILL)
        want = r"failed %s %d: \S+ \(job %s, it ran and committed nothing" % (phase, index, job)
    else:
        # Frozen over twice the limit, or already killed: a poll may land
        # while its resident size is between the limit and twice it, before
        # the watcher's next look.  Either way Slurm's verdict (checked
        # below) must be out of memory; a task that ran to its end is not.
        stopper[0].join(se.WAIT_S)
        print("%s %d %s" % (phase, index, "frozen over %d MB" % (2 * MEM_MB) if stopper[1]
                            else "killed before the watcher froze it"))
        want = r"failed %s %d: \S+ \(job %s, out of memory\)" % (phase, index, job)
    vctest.expect(not wait_done(), "the fault stops the chain: no run.json\n" + log_text())
    st = status()
    log = os.path.join(logs, "%s-%d.log" % (phase, index))
    vctest.expect(re.search(want, st) and log in st,
                  "status names %s %d, its log and why (%s)\n%s\n%s" % (phase, index, want, st,
                                                                      log_text()))
    if FAULT == "missing_input":
        vctest.expect("c.tar" in open(log).read(), "the task's log names c.tar")
        os.rename(c_tar + ".away", c_tar)
    if FAULT == "write_cancel":
        os.unlink(fifo)
    n = 4 if phase == "r0-map" else 5
    vctest.expect(re.search(r"^slurm %s\s+%d done, 0 running, 0 pending, [01] failed, [01] "
                            r"cancelled, 0 not submitted" % (phase, n - 1), st, re.M),
                  "status: %d of %d %s tasks done\n%s" % (n - 1, n, phase, st))
    vctest.expect(re.search(r"^%s\s+%d/%d committed" % (phase, n - 1, n), st, re.M),
                  "commit markers: %d of %d %s tasks\n%s" % (n - 1, n, phase, st))
    # The same command again, with memory enough for the oom case.
    s = run_slurm("1G")
    vctest.expect(s.returncode == 0 and ("submitted %s: job" % phase) in s.stderr
                  and "1 of %d tasks" % n in s.stderr,
                  "the rerun resubmits the one %s task: %s" % (phase, s.stderr))
    script = open(os.path.join(out, "_work", "slurm", phase + ".sh")).read()
    vctest.expect("#SBATCH --array=%d%%1\n" % index in script,
                  "the rerun's %s array = index %d" % (phase, index))
    vctest.expect(wait_done(), "the rerun completes\n" + log_text() + status())
    pe.compare_trees(ref, out, "%s + rerun vs --threads 2" % FAULT)
    seen = sorted((e["file"], e["index"]) for e in pe.ledger(out))
    vctest.expect(seen == se.every_input_sample(), "every input sample once in the ledger (%d)" % len(seen))
    st = status()
    vctest.expect("complete" in st and re.search(r"^slurm r0-map\s+4 done, .*samples/s", st, re.M),
                  "status: complete, with rates\n" + st)
    print("%s: %.1f s" % (FAULT, time.time() - t0))
finally:
    cluster.stop()
print("PASS")
