"""Helpers for the end-to-end tests of `vlmcurate run` (stdlib only).

Everything here reads vlmcurate's output with readers of its own (Python's
tarfile, raw header walks, hashlib), so the tests compare the tool with an
independent view of the same bytes.  The run's file names (ledger, run
manifest, task markers) are defined once here."""
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import vctest

# The webdataset rule for splitting a member name: the key is everything up
# to the first dot of the last path component (folders included).
MEMBER_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
# Files of a run that record wall-clock facts and so may differ between
# otherwise identical runs.
VOLATILE = {"run.json"}
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
# The idefics2-tiny fixture's images and the caption stage's "short" prompt.
TINY_IMAGES = ["photo_100x70.png", "tall_61x97.jpg", "wide_300x40.png", "small_20x15.png",
               "rgba_45x33.png", "square_200x200.png"]
SHORT_PROMPT = "Describe this image in one sentence."


def demo_data(args, folder, samples=40, seed=1, caption=False):
    """Generates demo input (no run) into folder; returns its demo.json.
    Without caption, spec.json loses its caption stage: the tests of
    reading, filtering and writing need not pay for the model (the model
    stages have tests of their own)."""
    vctest.run(args, ["demo", "--out", folder, "--samples", str(samples), "--seed", str(seed),
                      "--no-run"])
    if not caption:
        path = os.path.join(folder, "spec.json")
        with open(path) as f:
            spec = json.load(f)
        spec["stages"] = [st for st in spec["stages"] if st["stage"] != "caption"]
        write_spec(path, spec)
    with open(os.path.join(folder, "demo.json")) as f:
        return json.load(f)


def write_spec(path, spec):
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    return path


def run_cmd(args, spec_path, out, threads=1, extra=()):
    return [args.bin, "run", spec_path, "--threads", str(threads), "--out", out] + list(extra)


# A child's peak RSS starts at its parent's size when it forks (Linux
# carries the high-water mark across fork and exec): the command is started
# by a fresh interpreter, the same small size every time, which reports the
# child's rusage (os.wait4).
SPAWN = """import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_maxrss)"""


def peak_kb(cmd):
    """Peak RSS (KB) of the command's process, which must succeed."""
    r = subprocess.run([sys.executable, "-c", SPAWN] + cmd, capture_output=True, text=True)
    rc, kb = (int(x) for x in r.stdout.split())
    vctest.expect(rc == 0, "%s: exit %d\n%s" % (" ".join(cmd), rc, r.stderr[-3000:]))
    return kb


def write_tiny_tars(folder, n, per_tar, members):
    """Samples 0..n-1 into folder/t-0000.tar, t-0001.tar, ... (per_tar
    each), written with hand-made ustar headers, fast at 100k members;
    members(i) lists sample i's (name, bytes).  Returns the spec's urls."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    from gen_tiny_wds import header
    os.makedirs(folder, exist_ok=True)
    n_tars = (n + per_tar - 1) // per_tar
    for t in range(n_tars):
        parts = []
        for i in range(t * per_tar, min(n, (t + 1) * per_tar)):
            for name, data in members(i):
                parts += [header(name.encode(), len(data)), data, bytes(-len(data) % 512)]
        parts.append(bytes(1024))
        with open(os.path.join(folder, "t-%04d.tar" % t), "wb") as f:
            f.write(b"".join(parts))
    return "t-{0000..%04d}.tar" % (n_tars - 1)


def rerun_alone(args, out, phase, commit, outputs):
    """Removes a finished run's `commit` file and reruns task `phase` 0
    alone: its peak RSS (KB), after checking it wrote the same `outputs`
    (paths under out) byte for byte."""
    def digest(path):
        with open(os.path.join(out, path), "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    before = {o: digest(o) for o in outputs}
    os.unlink(os.path.join(out, commit))
    kb = peak_kb([args.bin, "task", out, phase, "0", "--quiet"])
    for o in outputs:
        vctest.expect(digest(o) == before[o], "%s rerun alone: %s byte-identical" % (phase, o))
    return kb


def run_spec(args, spec_path, out, threads=1, check=True, extra=()):
    """Runs a spec to completion; the CompletedProcess (text stdout/stderr)."""
    r = subprocess.run(run_cmd(args, spec_path, out, threads, extra), capture_output=True,
                       text=True, errors="replace")
    if check and r.returncode != 0:
        raise SystemExit("vlmcurate run failed (%d)\nstdout:\n%s\nstderr:\n%s" %
                         (r.returncode, r.stdout, r.stderr[-5000:]))
    return r


def kill_when(args, spec_path, out, ready, valid=lambda out: True, threads=2, attempts=5,
              limit=600):
    """Starts `run` into OUT and SIGKILLs it as soon as ready(OUT) holds.
    The kill counts when the run had not finished (no run.json) and
    valid(OUT) holds (the state the test wants to resume from); otherwise
    (a fast machine, or a poller descheduled past the moment) OUT is
    emptied and the run starts again, up to ATTEMPTS times.  True when
    OUT holds such a killed run."""
    for attempt in range(attempts):
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.Popen(run_cmd(args, spec_path, out, threads), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline, killed = time.monotonic() + limit, False
        while p.poll() is None and not killed:
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise SystemExit("FAILED: the run did not end within %d s" % limit)
            killed = ready(out)
            if killed:
                p.send_signal(signal.SIGKILL)
            else:
                time.sleep(0.002)
        p.wait()
        if killed and not os.path.exists(os.path.join(out, "run.json")) and valid(out):
            return True
        print("attempt %d: the run ended (%s) before a usable kill point; again" %
              (attempt + 1, p.returncode))
    return False


def run_json(out):
    with open(os.path.join(out, "run.json")) as f:
        return json.load(f)


def ledger(out):
    """The ledger's records, one per input sample, in file order."""
    plain = os.path.join(out, "ledger.jsonl")
    if os.path.exists(plain):
        data = open(plain, "rb").read()
    else:
        data = subprocess.run(["zstd", "-dc", plain + ".zst"], check=True,
                              capture_output=True).stdout
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def task_markers(out, round=None):
    """Commit markers of finished MAP tasks (of one round, or of all)."""
    work = os.path.join(out, "_work")
    if not os.path.isdir(work):
        return []
    pat = re.compile(r"r%s-map-\d{6}\.json" % (r"\d+" if round is None else round))
    return [n for n in os.listdir(work) if pat.fullmatch(n)]


def output_files(out, skip_volatile=True):
    """{relative path: sha256} of every file of a run (its _work folder and
    the volatile files left out)."""
    files = {}
    for root, dirs, names in os.walk(out):
        rel_root = os.path.relpath(root, out)
        if rel_root.split(os.sep)[0] == "_work":
            continue
        for n in names:
            rel = os.path.normpath(os.path.join(rel_root, n))
            if skip_volatile and rel in VOLATILE:
                continue
            files[rel] = hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
    return files


def compare_trees(a, b, what):
    fa, fb = output_files(a), output_files(b)
    vctest.expect(sorted(fa) == sorted(fb),
                  "%s: same files (only in first: %s, only in second: %s)" %
                  (what, sorted(set(fa) - set(fb))[:5], sorted(set(fb) - set(fa))[:5]))
    differ = sorted(k for k in fa if fa[k] != fb.get(k))
    vctest.expect(not differ, "%s: %d files, all byte-identical (differ: %s)" %
                  (what, len(fa), differ[:5]))


def shards(out, prefix):
    return sorted(os.path.join(out, n) for n in os.listdir(out)
                  if re.fullmatch(re.escape(prefix) + r"-\d{6}\.tar", n))


def split_member(name):
    m = MEMBER_RE.match(name)
    return (m.group(1), m.group(2)) if m else (None, None)


def read_samples(path):
    """[(key, {field: bytes})] of a tar in member order, members with the
    same key grouped while adjacent (as webdataset readers group them).
    Unreadable remainders are ignored: used on inputs too."""
    out = []
    try:
        with tarfile.open(path, "r:*") as t:
            for m in t:
                if not m.isreg():
                    continue
                key, ext = split_member(m.name)
                if key is None:
                    continue
                data = t.extractfile(m).read()
                if not out or out[-1][0] != key:
                    out.append((key, {}))
                out[-1][1].setdefault(ext.lower(), data)
    except (tarfile.TarError, EOFError, OSError):
        pass
    return out


def sample_json(fields):
    return json.loads(fields["json"].decode("utf-8")) if "json" in fields else {}


def tool_meta(fields):
    """The tool's own facts about a written sample: json["vlmcurate"]."""
    return sample_json(fields).get("vlmcurate", {})


def main_image(fields):
    for ext in IMAGE_EXTS:
        if ext in fields:
            return ext, fields[ext]
    return None, None


def expected_key(orig):
    """The output key README's "Keys" promises for a source key (before any
    cut or _N suffix): ASCII letters, digits, _ and - kept, other ASCII to
    _, the UTF-8 bytes of anything else (and %) percent-encoded."""
    out = []
    for b in orig.encode("utf-8", "surrogateescape"):
        c = chr(b)
        if b < 0x80 and (c.isalnum() or c in "_-"):
            out.append(c)
        elif b >= 0x80 or c == "%":
            out.append("%%%02X" % b)
        else:
            out.append("_")
    return "".join(out) or "_"


def totals_add_up(tot):
    return tot["input"] == tot["written"] + tot["rejected"] + tot["duplicate"] + tot["error"]


def png_size(data):
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def tar_bytes(members, fmt=tarfile.USTAR_FORMAT):
    """An archive (bytes, ustar unless fmt says otherwise) of [(name, data)],
    for hand-made inputs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def images_folder(tmp, name="a.png", side=40):
    """TMP/data with images/NAME, a SIDExSIDE PNG, for list sources (pairs,
    documents) to name; returns (the data folder, the PNG's bytes)."""
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "images"))
    png = vctest.png_bytes(side, side)
    with open(os.path.join(data, "images", name), "wb") as f:
        f.write(png)
    return data, png
