"""Every bad input of the demo data (a corrupt tar, a truncated JPEG, a PNG
with a corrupt chunk, "../" and absolute member names, a 100000x100000
header, a non-UTF-8 caption, an over-long caption, a repeated extension,
missing / escaping / empty pair images, a document with a missing image)
ends in the ledger with the state and reason it deserves, an error line on
stderr names its file, key and reason, and the run completes with totals
that add up and match the ledger line by line."""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
demo = pe.demo_data(args, data, samples=40, seed=5)
out = os.path.join(args.tmp, "out")
r = pe.run_spec(args, os.path.join(data, "spec.json"), out, threads=2)
vctest.expect(os.path.exists(os.path.join(out, "run.json")),
              "the run completes despite %d planted defects" % len(demo["defects"]))

# What each defect must become: (state, acceptable reasons).  Several
# reasons are acceptable only where two names describe the same failure.
EXPECT = {
    "truncated_jpeg": ("error", {"truncated", "decode_error"}),
    "corrupt_png_chunk": ("error", {"decode_error", "truncated"}),
    "huge_dimensions": ("error", {"image_too_large"}),
    "caption_not_utf8": ("error", {"text_not_utf8"}),
    "caption_too_long": ("error", {"field_too_long"}),
    "truncated_tar": ("error", {"corrupt_archive", "truncated"}),
    "unsafe_path_dotdot": ("error", {"unsafe_path"}),
    "unsafe_path_absolute": ("error", {"unsafe_path"}),
    "repeated_extension": ("error", {"repeated_field"}),
    "missing_image": ("error", {"missing_image"}),
    "empty_image": ("error", {"empty"}),
    "symlink_member": ("error", {"not_regular_file"}),
}

led = pe.ledger(out)
by_key = collections.defaultdict(list)
for e in led:
    by_key[(e.get("source"), e.get("key"))].append(e)


def pairs_key(image):
    """The pairs source keys a row by its image's file name stem."""
    return os.path.splitext(os.path.basename(image))[0]


stderr_lines = r.stderr.splitlines()
for d in demo["defects"]:
    src, kind = d["source"], d["defect"]
    if src == "docs":
        continue  # a missing document image is dropped, not an error: checked below
    key = d["key"] if src == "web" else pairs_key(d["key"])
    entries = by_key.get((src, key), [])
    vctest.expect(len(entries) == 1, "%s %s (%s): exactly one ledger entry, got %d" %
                  (src, key, kind, len(entries)))
    e = entries[0]
    state, reasons = EXPECT[kind]
    vctest.expect(e["state"] == state and e.get("reason") in reasons,
                  "%s %s: %s with reason %s (want %s %s)" %
                  (src, key, e["state"], e.get("reason"), state, sorted(reasons)))
    vctest.expect(bool(e.get("stage")) and os.path.basename(e.get("file", "")) ==
                  os.path.basename(d["file"]),
                  "%s %s: the entry names stage %r and file %r" % (src, key, e.get("stage"),
                                                                  e.get("file")))
    named = [ln for ln in stderr_lines
             if key in ln and e["reason"] in ln and os.path.basename(d["file"]) in ln]
    vctest.expect(named, "%s %s: an error line on stderr names file, key and reason" %
                  (src, key))

# The document with a missing picture is kept without it, and says so.
docs_defects = [d for d in demo["defects"] if d["source"] == "docs"]
vctest.expect(len(docs_defects) == 1, "one document defect planted")
found = False
for p in pe.shards(out, "demo"):
    for key, fields in pe.read_samples(p):
        meta = pe.sample_json(fields)
        for dropped in meta.get("dropped_images", []):
            if dropped.get("path") == docs_defects[0]["key"]:
                found = dropped.get("reason") == "missing_image"
vctest.expect(found, "the document with a missing image is written, its json records the "
              "dropped image %s as missing_image" % docs_defects[0]["key"])

# The symlink in the hostile shard is never followed or written: an error line.
links = [e for e in led if e.get("key") == "link"]
vctest.expect(len(links) == 1 and links[0]["state"] == "error" and
              links[0]["reason"] == "not_regular_file", "the symlink member is an error line")

# Accounting: one ledger line per input sample, totals that add up.
tot = pe.run_json(out)["totals"]
states = collections.Counter(e["state"] for e in led)
vctest.expect(pe.totals_add_up(tot), "totals add up: %s" % tot)
vctest.expect(len(led) == tot["input"], "%d ledger lines for %d inputs" % (len(led),
                                                                          tot["input"]))
vctest.expect(all(states[s] == tot[s] for s in ("written", "rejected", "duplicate", "error")),
              "ledger states %s match the totals" % dict(states))
# The unreadable rest of the corrupt shard is one more error line, keyed by
# no sample (nothing after the cut can be named).
rest = [e for e in led if e["state"] == "error" and not e.get("key")]
vctest.expect(len(rest) == 1 and os.path.basename(rest[0]["file"]) ==
              os.path.basename(demo["corrupt_shard"]) and
              rest[0]["reason"] in ("corrupt_archive", "truncated"),
              "one error line for the unreadable rest of %s" % demo["corrupt_shard"])
# Inputs counted independently: the samples present in the shard files,
# every row of pairs.jsonl, every document, and that one line.
vctest.expect(tot["input"] == demo["wds_samples"] + demo["pairs"] + demo["docs"] + 1,
              "input %d = %d webdataset samples + %d pair rows + %d documents + 1" %
              (tot["input"], demo["wds_samples"], demo["pairs"], demo["docs"]))
errors = [e for e in led if e["state"] == "error" and e.get("key")]
vctest.expect(len(errors) == len(demo["defects"]) - len(docs_defects),
              "%d sample errors: exactly the planted defects (%s)" %
              (len(errors), sorted((e.get("key"), e.get("reason")) for e in errors)))
print("PASS")
