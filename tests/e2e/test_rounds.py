"""A per-sample stage listed after a global stage sees only the records
that stage kept.  Two webdataset sources made here with tarfile: a (12
samples) and b (12 samples, max_samples 4); a concat mixture keeps all of
a and b's first 4 records (the README's concat rule), then a caption filter
(cap_words min 3) rejects the samples whose caption has one word (the even
ordinals).  Expected from the inputs alone: b's records 4..11 are rejected
by the mixture (mix_unused) and never judged by the filter; the filter
rejects a's 6 even records and b's records 0 and 2; the rest is written.
The same bytes at --threads 1 and 2."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
N = 12
for name in "ab":
    members = []
    for i in range(N):
        key = "%s%03d" % (name, i)
        caption = b"word" if i % 2 == 0 else b"a caption of five words"
        members += [(key + ".png", vctest.png_bytes(16, 16, i)), (key + ".txt", caption)]
    with open(os.path.join(args.tmp, name + ".tar"), "wb") as f:
        f.write(pe.tar_bytes(members))

spec = {"sources": [{"name": "a", "type": "webdataset", "urls": "a.tar"},
                    {"name": "b", "type": "webdataset", "urls": "b.tar", "max_samples": 4}],
        "stages": [{"stage": "ingest"},
                   {"stage": "reshard", "mix": "concat", "shuffle": "none"},
                   {"stage": "filter", "defaults": False,
                    "filters": [{"name": "cap_words", "min": 3}]},
                   {"stage": "write"}],
        "output": {"dir": "out", "prefix": "rounds", "samples_per_shard": 4}}
spec_path = pe.write_spec(os.path.join(args.tmp, "spec.json"), spec)

one, two = os.path.join(args.tmp, "t1"), os.path.join(args.tmp, "t2")
pe.run_spec(args, spec_path, one, threads=1)
pe.run_spec(args, spec_path, two, threads=2)
pe.compare_trees(one, two, "--threads 1 vs --threads 2")

fate = {(e["source"], e["index"]): e for e in pe.ledger(one)}
vctest.expect(len(fate) == 2 * N, "one ledger line per input sample: %d" % len(fate))
for i in range(N):
    a, b = fate[("a", i)], fate[("b", i)]
    want_a = "written" if i % 2 else "rejected"
    vctest.expect(a["state"] == want_a and (i % 2 or a.get("stage") == "filter"),
                  "a %d: %s %s" % (i, a["state"], a.get("stage")))
    if i >= 4:
        vctest.expect(b["state"] == "rejected" and b.get("stage") == "mix" and
                      b.get("reason") == "mix_unused",
                      "b %d: left out by the mixture, never filtered (%s %s)" %
                      (i, b.get("stage"), b.get("reason")))
    else:
        vctest.expect(b["state"] == ("written" if i % 2 else "rejected") and
                      (i % 2 or b.get("stage") == "filter"),
                      "b %d: drawn, then %s by %s" % (i, b["state"], b.get("stage")))
written = [k for p in pe.shards(one, "rounds") for k, _ in pe.read_samples(p)]
vctest.expect(len(written) == 8, "8 samples written: %s" % written)
vctest.expect(pe.totals_add_up(pe.run_json(one)["totals"]), "totals add up")

# dedup after a shuffled mixture: its plan keeps the mixture's order, less
# the duplicates.  c holds 8 distinct samples; d's first two copy c2 and c5
# (picture and caption), its last two are new.  The keeper of each pair is
# c's (same size: the earlier source), and the order written is the order
# of the same mixture without dedup with d000 and d001 left out.
for name, n in (("c", 8), ("d", 4)):
    members = []
    for i in range(n):
        src = (2, 5)[i] if name == "d" and i < 2 else 100 * (name == "d") + i
        members += [("%s%03d.png" % (name, i), vctest.png_bytes(16, 16, src)),
                    ("%s%03d.txt" % (name, i), b"caption number %d" % src)]
    with open(os.path.join(args.tmp, name + ".tar"), "wb") as f:
        f.write(pe.tar_bytes(members))
mixed = {"sources": [{"name": "c", "type": "webdataset", "urls": "c.tar"},
                     {"name": "d", "type": "webdataset", "urls": "d.tar"}],
         "stages": [{"stage": "ingest"},
                    {"stage": "reshard", "mix": "concat", "shuffle": "global", "seed": 7},
                    {"stage": "dedup", "image": {"phash": False}},  # flat test pictures
                    {"stage": "write"}],
         "output": {"dir": "out", "prefix": "dd", "samples_per_shard": 5}}
with_dedup = pe.write_spec(os.path.join(args.tmp, "spec-dedup.json"), mixed)
mixed["stages"].pop(2)
without = pe.write_spec(os.path.join(args.tmp, "spec-nodedup.json"), mixed)
outs = {}
for tag, sp, th in (("d1", with_dedup, 1), ("d2", with_dedup, 2), ("n1", without, 1)):
    outs[tag] = os.path.join(args.tmp, tag)
    pe.run_spec(args, sp, outs[tag], threads=th)
pe.compare_trees(outs["d1"], outs["d2"], "dedup after a mixture: --threads 1 vs 2")
order = [k for p in pe.shards(outs["n1"], "dd") for k, _ in pe.read_samples(p)]
got = [k for p in pe.shards(outs["d1"], "dd") for k, _ in pe.read_samples(p)]
vctest.expect(len(order) == 12 and order != sorted(order), "the mixture shuffles: %s" % order)
vctest.expect(got == [k for k in order if k not in ("d000", "d001")],
              "dedup keeps the mixture's order less d000, d001: %s" % got)
dups = {e["key"]: e["dup_of"]["key"] for e in pe.ledger(outs["d1"]) if e["state"] == "duplicate"}
vctest.expect(dups == {"d000": "c002", "d001": "c005"}, "duplicates and keepers: %s" % dups)
print("PASS")
