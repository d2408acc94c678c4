"""What a mixture does is applied and said, never silent (issue 7 item 12).

Inputs are tars made here with Python's tarfile: a large source "big" (400
samples, one-word captions) and a small one "small" (20 samples, ten-word
captions).
- Weights without a reshard stage are applied (before, they were ignored
  and all 420 samples written): equal weights stop when "small" runs out.
- After the run, stdout says per source "used N of M (weight w)" and warns
  that most of "big" went unused; run.json says the same numbers.
- total_samples 300 upsamples "small" by epochs: it is drawn about half the
  time (binomial bounds), each of its samples about 7.5 times, and nothing
  of it is unused.
- weight_by tokens balances text tokens, not samples: with equal weights,
  the tokens from each source are close to half, so "big" (1 token a
  sample) is drawn about ten times as often as "small" (10)."""
import collections
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
png = vctest.png_bytes(8, 8, 3)
SIZES = {"big": 400, "small": 20}
WORDS = {"big": 1, "small": 10}
for name, n in SIZES.items():
    members = []
    for i in range(n):
        key = "%s%04d" % (name, i)
        caption = " ".join(["word%d" % w for w in range(WORDS[name])])
        members += [(key + ".png", png), (key + ".txt", caption.encode())]
    with open(os.path.join(args.tmp, name + ".tar"), "wb") as f:
        f.write(pe.tar_bytes(members))


def spec(stages, **mix):
    return {"sources": [{"name": name, "type": "webdataset", "urls": name + ".tar", "weight": 1}
                        for name in SIZES],
            "stages": stages + ([{"stage": "reshard", "seed": 7, **mix}] if mix else []),
            "output": {"dir": "out", "prefix": "m", "samples_per_shard": 1000}}


def run(tag, sp):
    out = os.path.join(args.tmp, tag)
    r = pe.run_spec(args, pe.write_spec(os.path.join(args.tmp, tag + ".json"), sp), out)
    drawn = collections.Counter()
    per_key = collections.Counter()
    for p in pe.shards(out, "m"):
        for _, fields in pe.read_samples(p):
            j = pe.sample_json(fields)
            drawn[j["vlmcurate"]["source"]] += 1
            per_key[j["vlmcurate"]["orig_key"]] += 1
    return out, r.stdout, drawn, per_key


def used_line(stdout, name):
    for line in stdout.splitlines():
        if line.startswith("mix: source '%s': used " % name):
            return line
    return ""


# 1. Weights and no reshard stage: the mixture is applied all the same.
out, stdout, drawn, _ = run("implied", spec([{"stage": "ingest"}]))
vctest.expect(drawn["small"] == 20, "implied mixture: all of small drawn (%s)" % dict(drawn))
vctest.expect(drawn["big"] < 80, "implied mixture: stops when small runs out, big drawn %d "
              "(420 would mean the weights were ignored)" % drawn["big"])
rep = pe.run_json(out)["mix"]["sources"]
for name in SIZES:
    want = "mix: source '%s': used %d of %d (weight 1)" % (name, rep[name]["used"], SIZES[name])
    vctest.expect(used_line(stdout, name).startswith(want),
                  "stdout has %r, got %r" % (want, used_line(stdout, name)))
vctest.expect(rep["big"]["used"] == drawn["big"], "run.json used = what was written")
unused = sum(1 for rec in pe.ledger(out) if rec.get("reason") == "mix_unused")
vctest.expect(unused == 400 - drawn["big"], "ledger: the rest of big is mix_unused (%d)" % unused)
warn = "warning: source 'big': %.0f%% of its samples were not used" % (
    100.0 * (400 - drawn["big"]) / 400)
vctest.expect(warn in stdout, "stdout warns %r:\n%s" % (warn, stdout))
vctest.expect("warning: source 'small'" not in stdout, "no warning for small")

# 2. A target size upsamples the small source by epochs.
out, stdout, drawn, per_key = run("target", spec([], total_samples=300))
n = sum(drawn.values())
vctest.expect(n == 300, "total_samples: 300 written, got %d" % n)
sd = math.sqrt(300 * 0.25)
vctest.expect(abs(drawn["small"] - 150) <= 4 * sd, "small drawn %d, expected 150 +- %.0f" %
              (drawn["small"], 4 * sd))
small_keys = [k for k in per_key if k.startswith("small")]
vctest.expect(len(small_keys) == 20 and max(per_key[k] for k in small_keys) -
              min(per_key[k] for k in small_keys) <= 1,
              "every small sample drawn ceil or floor of its share (epochs, in order)")
rep = pe.run_json(out)["mix"]["sources"]["small"]
vctest.expect(rep["drawn"] == drawn["small"] and rep["used"] == 20 and
              rep["epochs"] == math.ceil(drawn["small"] / 20), "run.json: %s" % rep)
want = "mix: source 'small': used 20 of 20 (weight 1), drawn %d times over %d epochs" % (
    drawn["small"], rep["epochs"])
vctest.expect(want in stdout, "stdout has %r:\n%s" % (want, stdout))

# 3. Weights by tokens: about half the tokens from each source.
out, stdout, drawn, _ = run("tokens", spec([], weight_by="tokens", total_samples=330))
tok = {name: drawn[name] * WORDS[name] for name in SIZES}
share = tok["small"] / (tok["small"] + tok["big"])
vctest.expect(abs(share - 0.5) < 0.15, "weight_by tokens: small's token share %.2f (%s)" %
              (share, dict(drawn)))
vctest.expect(drawn["big"] > 5 * drawn["small"], "big drawn far more often by sample: %s" %
              dict(drawn))
rep = pe.run_json(out)["mix"]
vctest.expect(rep["weight_by"] == "tokens" and
              rep["sources"]["small"]["tokens"] == tok["small"], "run.json tokens: %s" % rep)
print("PASS")
