"""The progress line of a captioning round: images/s, tokens/s and an ETA
while its only unit is still running.

A model round runs one unit at a time, so an ETA from units done says
nothing until the last unit is done.  Here one shard of distinct images
goes through dedup (a global stage, so the caption round knows how many
records its unit holds) and then the caption stage on the tiny fixture,
with a log line every second (the unit grows until its run spans three
lines).  Expected: while the caption round shows
0/1 units, its lines already carry a numeric ETA, img/s and tok/s, and
the samples count moves inside the unit; and each line's ETA is the work
left at that line's own rate: (records - images done) / img/s, the
elapsed time being samples / samples/s (within the rounding of the
printed figures).  That holds on a fast machine, where the whole unit
takes two seconds and every ETA reads "1s", as on a slow one."""
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402
from PIL import Image  # noqa: E402
import io  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
line = re.compile(r"^(?P<phase>[^:]+): 0/1 units, (?P<n>\d+) samples, "
                  r"(?P<rate>[\d.]+) samples/s, (?P<img>[\d.]+) img/s, (?P<tok>[\d.]+) tok/s, .*ETA (?P<eta>\S+)$")


def caption_run(n):
    """The progress lines printed while the caption unit of n distinct
    pictures runs."""
    rng = random.Random(5)
    members = []
    for i in range(n):
        im = Image.frombytes("RGB", (48, 40), rng.randbytes(48 * 40 * 3))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        members.append(("k%05d.png" % i, buf.getvalue()))
    data = os.path.join(args.tmp, "data-%d" % n)
    os.makedirs(data)
    with open(os.path.join(data, "in-000000.tar"), "wb") as f:
        f.write(pe.tar_bytes(members))
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
            "stages": [{"stage": "dedup"},
                       {"stage": "caption", "model": FIX, "max_new_tokens": 40, "batch": 2}],
            "output": {"prefix": "cap"}, "log_interval_s": 1}
    out = os.path.join(args.tmp, "out-%d" % n)
    r = pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out)
    return [m for m in map(line.match, r.stderr.splitlines()) if m]


# A faster machine (or one with more cores for the engine) finishes the
# unit between two log lines: the unit then grows until it spans three.
N = 480
inside = caption_run(N)
while len(inside) < 3 and N < 8 * 480:
    N *= 2
    inside = caption_run(N)
print("\n".join(m.group(0) for m in inside))
vctest.expect(len(inside) >= 2, "%d progress lines while the caption unit runs" % len(inside))
etas = [m.group("eta") for m in inside]
vctest.expect(all(re.fullmatch(r"\d+s", e) for e in etas),
              "every line inside the unit has an ETA: %s" % etas)
vctest.expect(all(float(m.group("img")) > 0 and float(m.group("tok")) > 0 for m in inside),
              "img/s and tok/s shown")
vctest.expect(int(inside[-1].group("n")) > int(inside[0].group("n")) or len(inside) == 2,
              "the samples count moves inside the unit")


def eta(rate, img_rate, n):
    """The unit's share done is its images (or samples, whichever is
    further) over the N records it holds, kept below 0.99."""
    secs = n / rate
    done = min(max(img_rate, rate) * secs / N, 0.99)
    return secs / done * (1 - done)


def eta_range(m):
    """The ETAs the line's printed figures allow: samples/s is printed to
    0.05 and img/s to 0.005, and an ETA computed from them is off by up to
    about N * 0.005 / img_rate^2 + secs * 0.05 / rate seconds, which grows
    as a loaded machine slows the rates: a fixed tolerance fails there.  The ETA is not monotonic in samples/s (the share done
    switches between images and samples), so the interval is sampled."""
    rate, img_rate, n = float(m.group("rate")), float(m.group("img")), int(m.group("n"))
    if rate < 0.05:  # "0.0 samples/s": the elapsed time is unknown
        return 0.0, float("inf")
    rates = [rate - 0.05 + 0.1 * k / 100 for k in range(101) if rate - 0.05 + 0.1 * k / 100 > 0]
    imgs = [max(img_rate - 0.005, 1e-9), img_rate + 0.005]
    etas = [eta(r, i, n) for r in rates for i in imgs]
    return min(etas), max(etas)


ranges = [eta_range(m) for m in inside]
want = ["%.2f-%.2f" % r for r in ranges]
# +-1: the printed ETA is itself rounded to a whole second.
vctest.expect(all(lo - 1.0 <= int(m.group("eta")[:-1]) <= hi + 1.0
                  for m, (lo, hi) in zip(inside, ranges)),
              "each ETA is the work left at its line's rate: printed %s, expected %s" % (etas, want))
print("PASS")
