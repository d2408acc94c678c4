"""The score stage against log-probabilities computed here, in Python, from
the idefics2-tiny fixture's expected logits (expected.safetensors, made by
an independent float32 reference).

relevance: case raw_wide_split's prompt is "<image>Caption:" with image
splitting, so a sample of that image with the text "Caption:" scored with
relevance_raw_prompt "<image>" must get the mean over the caption's tokens
of log_softmax(logits[t-1])[ids[t]].  perplexity: case text_only's prompt
is the text after BOS, so its perplexity is exp(-mean log-likelihood) over
every token after BOS.  Then the filters: "min" rejects in MAP with the
score in the ledger and no global round, "max_quantile" ("min_quantile")
rejects globally exactly the samples above (below) the nearest-rank
quantile of the scores of the unfiltered run (a result cache deleted after
its unit committed stops the cut, naming the file and the unit), and the
stats stage shows the scores as histograms."""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
exp = vctest.read_safetensors(os.path.join(FIX, "expected.safetensors"))
cases = {c["name"]: c for c in json.load(open(os.path.join(FIX, "cases.json")))["cases"]}
V = 579
FAKE = 576


def log_softmax_at(logits, row, token):
    r = logits[row * V:(row + 1) * V]
    m = max(r)
    return r[token] - m - math.log(sum(math.exp(x - m) for x in r))


def mean_logprob(case, first):
    """Mean over t >= first of log p(ids[t] | ids[<t]) from the case's logits."""
    ids = exp[case + ".input_ids"][2]
    logits = exp[case + ".logits"][2]
    lps = [log_softmax_at(logits, t - 1, ids[t]) for t in range(first, len(ids))]
    return sum(lps) / len(lps)


ids_wide = exp["raw_wide_split.input_ids"][2]
after_image = max(i for i, t in enumerate(ids_wide) if t == FAKE) + 1
want_relevance = mean_logprob("raw_wide_split", after_image)
want_perplexity = math.exp(-mean_logprob("text_only", 1))
vctest.expect(cases["raw_wide_split"]["rendered_prompt"] == "<image>Caption:"
              and cases["text_only"]["rendered_prompt"] == "The quick brown fox jumps over",
              "fixture prompts as this test assumes")

img = lambda n: open(os.path.join(FIX, "images", n), "rb").read()  # noqa: E731
texts = ["Caption:", "The quick brown fox jumps over", "a cat on a mat", "zzzz qqqq",
         "Describe this image", "the the the the", "1 2 3 4 5 6"]
members = [("a.png", img("wide_300x40.png")), ("a.txt", b"Caption:")]
for i, t in enumerate(texts[1:]):
    members += [("t%d.png" % i, img("photo_100x70.png")), ("t%d.txt" % i, t.encode())]
data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "in-000000.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))


def score_spec(name, filters=None):
    st = {"stage": "score", "model": FIX, "relevance_raw_prompt": "<image>",
          "image_splitting": True}
    if filters:
        st["filters"] = filters
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
            "stages": [st, {"stage": "stats"}], "output": {"prefix": "sc"}}
    return pe.write_spec(os.path.join(data, name + ".json"), spec)


def run(name, filters=None):
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, score_spec(name, filters), out)
    got = {}
    for shard in pe.shards(out, "sc"):
        for key, fields in pe.read_samples(shard):
            got[key] = pe.sample_json(fields)["model_scores"]
    return out, got


out, scores = run("plain")
vctest.expect(len(scores) == len(texts), "every sample scored (%d)" % len(scores))
got = scores["a"]["relevance"]
vctest.expect(abs(got - want_relevance) < 2e-3,
              "relevance of 'Caption:' given wide_300x40.png: %.6f, from the fixture's logits "
              "%.6f" % (got, want_relevance))
got = scores["t0"]["perplexity"]
vctest.expect(abs(got - want_perplexity) < 2e-3 * want_perplexity,
              "perplexity of text_only's text: %.5f, from the fixture's logits %.5f" %
              (got, want_perplexity))
vctest.expect(all(0 < s["nsfw"] < 1 for s in scores.values()), "nsfw is a probability")
stats = json.load(open(os.path.join(out, "stats.json")))
blob = json.dumps(stats)
vctest.expect(all("score.%s" % n in blob for n in ("relevance", "perplexity", "nsfw")),
              "the audit has histograms of the three scores")

rel = sorted(s["relevance"] for s in scores.values())
cut = rel[len(rel) // 2]
out, kept = run("min", [{"name": "relevance", "min": cut}])
below = {k for k, s in scores.items() if s["relevance"] < cut}
vctest.expect(set(kept) == set(scores) - below and below, "min rejects the %d below %.4f" %
              (len(below), cut))
lines = {r["key"]: r for r in pe.ledger(out) if r["state"] == "rejected"}
work = os.listdir(os.path.join(out, "_work"))
vctest.expect("r0-plan.json" not in work and not any(n.startswith("r1-") for n in work),
              "a per-sample threshold needs no global cut: one round (%s)" % sorted(work))
vctest.expect(set(lines) == below and all(r["filter"] == "relevance" and r["threshold"] == cut
                                          and abs(r["score"] - scores[k]["relevance"]) < 1e-9
                                          for k, r in lines.items()),
              "ledger: filter relevance, the score and the threshold")

# "min": null is no bound, as null is absent everywhere in a spec (before:
# a min of 0, which rejected every sample, relevance being below 0).
out, kept = run("min-null", [{"name": "relevance", "min": None, "max": 0}])
vctest.expect(set(kept) == set(scores), "\"min\": null rejects nothing (kept %d of %d)" %
              (len(kept), len(scores)))

ppl = sorted(s["perplexity"] for s in scores.values())
q = 0.5
threshold = ppl[math.ceil(q * len(ppl)) - 1]
out, kept = run("quantile", [{"name": "perplexity", "max_quantile": q}])
above = {k for k, s in scores.items() if s["perplexity"] > threshold}
vctest.expect(set(kept) == set(scores) - above and len(above) == 3,
              "max_quantile 0.5 rejects the %d above the median %.3f" % (len(above), threshold))
lines = {r["key"] for r in pe.ledger(out) if r["state"] == "rejected" and r["stage"] == "score"}
vctest.expect(lines == above, "ledger: the quantile rejections are the score stage's")
rep = pe.run_json(out)["score"]["perplexity"]
vctest.expect(rep == {"max_quantile": q, "threshold": threshold, "rejected": 3},
              "run.json reports the global threshold: %s" % rep)
vctest.expect(os.path.exists(os.path.join(out, "_work", "r0-plan.json")),
              "a quantile cut ends the round (r0-plan.json)")

# The cut reads the scores from the units' result caches: one deleted after
# its unit committed stops the plan step with an error naming the file and
# the unit (a rerun skips a committed unit, so its scores cannot come back),
# and is not recreated empty (which would cut on no scores at all).
out = os.path.join(args.tmp, "lost_cache")


def task(*a):
    return subprocess.run([args.bin, "task", out] + list(a), capture_output=True, text=True,
                          timeout=600)


r = task("r0-map", "0", "--spec", score_spec("lost_cache", [{"name": "perplexity",
                                                             "max_quantile": q}]))
vctest.expect(r.returncode == 0, "r0-map 0 commits: %s" % r.stderr[-300:])
cache = [n for n in os.listdir(os.path.join(out, "_work")) if n.endswith("-000000.cache")]
vctest.expect(len(cache) == 1 and cache[0].startswith("score-"), "unit 0's cache: %s" % cache)
cache = os.path.join(out, "_work", cache[0])
os.unlink(cache)
r = task("r0-plan", "0")
vctest.expect(r.returncode == 1 and cache in r.stderr and "committed unit 0" in r.stderr,
              "a deleted cache of a committed unit fails the plan step, naming both: %s"
              % r.stderr.strip()[-300:])
vctest.expect(not os.path.exists(cache) and
              not os.path.exists(os.path.join(out, "_work", "r0-plan.json")),
              "the cache is not recreated and the plan not committed")

# A misspelt score, or a filter on a score not computed: refused at spec
# load (exit 2), naming the word.
for what, st, word in (("an unknown score", {"scores": ["relevance", "nsfww"]}, "'nsfww'"),
                       ("a filter on a score not listed",
                        {"scores": ["relevance"], "filters": [{"name": "relevanc", "min": 1}]},
                        "'relevanc'"),
                       ("a min above the max (it would reject everything)",
                        {"filters": [{"name": "nsfw", "min": 0.9, "max": 0.1}]}, "min 0.9")):
    st.update({"stage": "score", "model": FIX})
    bad = pe.write_spec(os.path.join(data, "bad.json"), {
        "sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
        "stages": [st], "output": {"prefix": "sc"}})
    r = pe.run_spec(args, bad, os.path.join(args.tmp, "bad"), check=False)
    vctest.expect(r.returncode == 2 and word in r.stderr and "score" in r.stderr,
                  "%s is refused naming %s: %s" % (what, word, r.stderr.strip()[-200:]))

# min_quantile drops the values below the nearest-rank quantile.
q = 0.3
threshold = rel[math.ceil(q * len(rel)) - 1]
out, kept = run("min_quantile", [{"name": "relevance", "min_quantile": q}])
low = {k for k, s in scores.items() if s["relevance"] < threshold}
vctest.expect(set(kept) == set(scores) - low and len(low) == 2,
              "min_quantile 0.3 rejects the %d below %.4f" % (len(low), threshold))
rep = pe.run_json(out)["score"]["relevance"]
vctest.expect(rep == {"min_quantile": q, "threshold": threshold, "rejected": 2},
              "run.json reports the min_quantile threshold: %s" % rep)
# nsfw_raw_prompt: the processor's text as is (a base model has no chat).
# The fixture's template renders the chat turn Q with the image before it
# as RAW below (case chat_single_nosplit), so the two forms must score
# alike, and the provenance names the form used.
Q = "What is in the image?"
RAW = "User:<image>" + Q + "<end_of_utterance>\nAssistant:"
vctest.expect(cases["chat_single_nosplit"]["rendered_prompt"] == RAW, "the fixture renders " + Q)


def run_nsfw(name, **keys):
    st = {"stage": "score", "model": FIX, "scores": ["nsfw"], "image_splitting": False}
    st.update(keys)
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
            "stages": [st], "output": {"prefix": "sc"}}
    out = os.path.join(args.tmp, name)
    r = pe.run_spec(args, pe.write_spec(os.path.join(data, name + ".json"), spec), out,
                    check=False)
    got = {}
    if r.returncode == 0:
        for shard in pe.shards(out, "sc"):
            for key, fields in pe.read_samples(shard):
                meta = pe.sample_json(fields)
                got[key] = (meta["model_scores"]["nsfw"], meta["model_scores_provenance"])
    return r, got


_, chat = run_nsfw("nsfw_chat", nsfw_prompt=Q)
r, raw = run_nsfw("nsfw_raw", nsfw_raw_prompt=RAW)
vctest.expect(r.returncode == 0 and set(raw) == set(chat) == set(scores),
              "nsfw_raw_prompt scores every sample: %s" % r.stderr.strip()[-300:])
vctest.expect(all(abs(raw[k][0] - chat[k][0]) <= 1e-6 * chat[k][0] for k in chat),
              "nsfw_raw_prompt of the rendered chat = nsfw_prompt: %s vs %s" %
              ([raw[k][0] for k in sorted(raw)], [chat[k][0] for k in sorted(chat)]))
prov = raw["a"][1] if "a" in raw else {}
vctest.expect(prov.get("nsfw_raw_prompt") == RAW and "nsfw_prompt" not in prov,
              "the provenance records nsfw_raw_prompt: %s" % prov)
for bad in ({"nsfw_raw_prompt": "no image"}, {"nsfw_raw_prompt": "<image><image>"},
            {"nsfw_raw_prompt": "<image>", "nsfw_prompt": Q}):
    r, _ = run_nsfw("nsfw_bad", **bad)
    vctest.expect(r.returncode == 2 and "nsfw_raw_prompt" in r.stderr,
                  "%s: a spec error naming nsfw_raw_prompt: %s" % (bad, r.stderr.strip()[-200:]))
print("PASS")
