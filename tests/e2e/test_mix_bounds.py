"""A seeded weighted mixture of three sources (weights 0.5/0.3/0.2) draws
from each within 4 binomial standard deviations of its weight, reports
the realised proportions it actually wrote in run.json, ledgers what it
left unused as rejected (mix_unused), and changes with the seed.  A
per-source cap (max_samples) makes that source leave the mixture once
reached (the README's rule): up to that point the three weights hold,
after it the other two share the draws 0.6/0.4 until one runs out.  The sources are tars made here with tarfile, large
enough that the bounds mean something."""
import collections
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
PER_SOURCE, PER_SHARD = 1500, 500
WEIGHTS = {"a": 0.5, "b": 0.3, "c": 0.2}
pngs = [vctest.png_bytes(8, 8, seed) for seed in range(64)]
for name in WEIGHTS:
    for s in range(PER_SOURCE // PER_SHARD):
        members = []
        for i in range(s * PER_SHARD, (s + 1) * PER_SHARD):
            key = "%s%06d" % (name, i)
            members += [(key + ".png", pngs[i % 64]), (key + ".txt", b"sample %d" % i)]
        with open(os.path.join(args.tmp, "%s-%06d.tar" % (name, s)), "wb") as f:
            f.write(pe.tar_bytes(members))


def spec(seed, cap_a=None):
    sources = []
    for name, w in WEIGHTS.items():
        src = {"name": name, "type": "webdataset", "weight": w,
               "urls": "%s-{000000..%06d}.tar" % (name, PER_SOURCE // PER_SHARD - 1)}
        if name == "a" and cap_a:
            src["max_samples"] = cap_a
        sources.append(src)
    return {"sources": sources,
            "stages": [{"stage": "ingest"},
                       {"stage": "reshard", "mix": "weighted", "stop": "first_exhausted",
                        "seed": seed, "shuffle": "none"},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "mix", "samples_per_shard": 1000}}


def run(tag, seed, cap_a=None):
    out = os.path.join(args.tmp, tag)
    pe.run_spec(args, pe.write_spec(os.path.join(args.tmp, tag + ".json"), spec(seed, cap_a)),
                out, threads=2)
    order = [pe.tool_meta(f)["source"] for p in pe.shards(out, "mix")
             for _, f in pe.read_samples(p)]
    return out, order


def within_bounds(tag, order, weights):
    """Each source's share of `order` is within 4 binomial sd of its weight."""
    counts = collections.Counter(order)
    n = len(order)
    for name, w in weights.items():
        sd = math.sqrt(n * w * (1 - w))
        vctest.expect(abs(counts[name] - n * w) <= 4 * sd,
                      "%s: %s drawn %d of %d, expected %.0f +- %.0f (4 sd)" %
                      (tag, name, counts[name], n, n * w, 4 * sd))


def check(tag, out, order, exhausted, n_exhausted):
    """Bounds for an uncapped run, plus what run.json and the ledger say."""
    counts = collections.Counter(order)
    n = len(order)
    vctest.expect(counts[exhausted] == n_exhausted,
                  "%s: source %s drawn to exhaustion (%d)" % (tag, exhausted, n_exhausted))
    if n_exhausted == PER_SOURCE:
        within_bounds(tag, order, WEIGHTS)
    rep = pe.run_json(out).get("mix", {}).get("sources", {})
    vctest.expect(sorted(rep) == sorted(WEIGHTS), "%s: run.json reports the mixture" % tag)
    for name, s in rep.items():
        vctest.expect(s["drawn"] == counts[name] and
                      abs(s["proportion"] - counts[name] / n) < 1e-9,
                      "%s: reported %s drawn %s proportion %.4f = written %d/%d" %
                      (tag, name, s["drawn"], s["proportion"], counts[name], n))
    led = pe.ledger(out)
    unused = [e for e in led if e["state"] == "rejected" and e.get("reason") == "mix_unused"]
    vctest.expect(len(unused) == 3 * PER_SOURCE - n,
                  "%s: the %d samples left unused are ledgered as mix_unused" %
                  (tag, 3 * PER_SOURCE - n))
    tot = pe.run_json(out)["totals"]
    vctest.expect(pe.totals_add_up(tot) and tot["input"] == 3 * PER_SOURCE,
                  "%s: totals add up over all %d inputs" % (tag, 3 * PER_SOURCE))
    return counts


out1, order1 = run("seed7", 7)
check("seed 7", out1, order1, "a", PER_SOURCE)
out2, order2 = run("seed8", 8)
check("seed 8", out2, order2, "a", PER_SOURCE)
vctest.expect(order1 != order2, "another seed draws another mixture")
out3, order3 = run("cap", 7, cap_a=300)
check("cap 300 on a", out3, order3, "a", 300)
# No shuffle: the output order is the draw order.  Split it where a's cap
# is reached.
last_a = max(i for i, s in enumerate(order3) if s == "a")
within_bounds("cap 300, draws up to the cap", order3[:last_a + 1], WEIGHTS)
rest = order3[last_a + 1:]
within_bounds("cap 300, draws after it", rest, {"b": 0.6, "c": 0.4})
counts3 = collections.Counter(order3)
vctest.expect(max(counts3["b"], counts3["c"]) == PER_SOURCE,
              "cap 300: the mixture stops when b or c runs out (%s)" % dict(counts3))
print("PASS")
