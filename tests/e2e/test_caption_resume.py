"""kill -9 while the caption stage is captioning a unit, then the same
command again: the output is byte-identical to an uninterrupted run, and no
caption is computed twice beyond the batch in flight.  The count comes
from the unit's result cache (OUT/_work/caption-*.cache, one line per
caption computed, appended and fsynced as the engine finishes each): the
lines committed before the kill are still there, unchanged, and after the
resume the file holds exactly one line per sample, so the resumed run
computed exactly the captions not committed; only the requests in the
engine's 4 slots at the kill were computed twice."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
N = 40
names = sorted(os.listdir(os.path.join(FIX, "images")))
members = []
for i in range(N):
    name = names[i % len(names)]
    members.append(("k%04d.%s" % (i, name.rsplit(".", 1)[1]),
                    open(os.path.join(FIX, "images", name), "rb").read()))
data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "in-000000.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))
spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
        "stages": [{"stage": "caption", "model": FIX, "max_new_tokens": 8, "batch": 4}],
        "output": {"prefix": "cap"}}
spec_path = pe.write_spec(os.path.join(data, "spec.json"), spec)

ref = os.path.join(args.tmp, "ref")
pe.run_spec(args, spec_path, ref, threads=1)


def cache_lines(out):
    files = glob.glob(os.path.join(out, "_work", "caption-*.cache"))
    if not files:
        return b""
    return open(files[0], "rb").read()


out = os.path.join(args.tmp, "killed")


def committed(out):
    return cache_lines(out).count(b"\n")


vctest.expect(pe.kill_when(args, spec_path, out, lambda o: committed(o) >= N // 4,
                           valid=lambda o: committed(o) < N, threads=1),
              "run killed with SIGKILL while captioning")
before = cache_lines(out)
done = before[:before.rfind(b"\n") + 1]
vctest.expect(0 < done.count(b"\n") < N, "%d of %d captions committed before the kill" %
              (done.count(b"\n"), N))
pe.run_spec(args, spec_path, out, threads=1)
after = cache_lines(out)
vctest.expect(set(done.splitlines()) <= set(after.splitlines()),
              "the committed captions are kept, not recomputed")
keys = [json.loads(line)["k"] for line in after.splitlines()]
vctest.expect(len(keys) == N and len(set(keys)) == N,
              "%d captions computed in all for %d samples, none twice" % (len(keys), N))
vctest.expect(after == cache_lines(ref), "the cache is the uninterrupted run's, byte for byte")
pe.compare_trees(ref, out, "killed while captioning, resumed vs uninterrupted")
print("PASS")
