"""OCR inside `vlmcurate run`: real PDF pages that Debian packages ship
(shared-mime-info's specification, pdfTeX output; libtasn1's Texinfo
manual), rendered by the pdf source through poppler-glib, read by the ocr
stage.

Tesseract: the character error rate against pdftotext's text of the same
pages (poppler-utils, an independent program reading the PDF's text
layer), both with runs of whitespace collapsed, must stay below 5 %.
The engine path, on the tiny random Idefics2 fixture (its text is noise,
so no CER): the OCR prompt with image splitting on gives exactly the ids
`vlmcurate generate --image-splitting on` gives for the same page image,
and the same bytes at batch 1 / 1 thread and batch 16 / 2 threads.
Also: the pages are PNGs of the size the dpi implies, and a page over the
pixel limits is an image_too_large ledger line."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
PDF = "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"
PDF2 = "/usr/share/doc/libtasn1-doc/libtasn1.pdf"
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
FIRST, LAST, DPI = 1, 2, 150
OCR_PROMPT = "What is written in this image? Transcribe the text exactly."
for path, pkg in ((PDF, "shared-mime-info"), (PDF2, "libtasn1-doc")):
    if not os.path.exists(path):
        raise SystemExit("FAILED: %s missing: install %s (scripts/install-deps.sh)" % (path, pkg))

# Tesseract, poppler and libcurl are opened when a spec needs them, not at
# the start of every process: the binary does not name them as its
# libraries (this run then loads two of them, for the pdf source and the
# ocr stage; e2e.urls loads libcurl).
needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(["objdump", "-p", args.bin],
                                                      capture_output=True, text=True).stdout)
vctest.expect(needed and not [n for n in needed if re.search("tesseract|poppler|curl", n)],
              "the binary links no tesseract, poppler or curl at start (NEEDED: %s)" % needed)


def norm(t):
    return re.sub(r"\s+", " ", t).strip()


def cer(hyp, ref, band=150):
    """Levenshtein distance / len(ref), computed in a diagonal band: exact
    when the best alignment never drifts more than `band` characters, an
    upper bound otherwise (so the test can only get stricter)."""
    big = len(hyp) + len(ref)
    prev = {j: j for j in range(min(len(hyp), band) + 1)}
    for i, rc in enumerate(ref, 1):
        lo, hi = max(0, i - band), min(len(hyp), i + band)
        cur = {}
        for j in range(lo, hi + 1):
            if j == 0:
                cur[j] = i
                continue
            cur[j] = min(prev.get(j, big) + 1, cur.get(j - 1, big) + 1,
                         prev.get(j - 1, big) + (rc != hyp[j - 1]))
        prev = cur
    return prev.get(len(hyp), big) / max(1, len(ref))


def run(name, stage, threads=1, **source):
    src = {"name": "doc", "type": "pdf", "urls": PDF, "dpi": DPI, "first_page": FIRST,
           "last_page": LAST}
    src.update(source)
    spec = {"sources": [src], "stages": [stage], "output": {"prefix": "ocr"}}
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, pe.write_spec(os.path.join(args.tmp, name + ".json"), spec), out,
                threads=threads)
    got = {}
    for shard in pe.shards(out, "ocr"):
        for key, fields in pe.read_samples(shard):
            got[key] = fields
    return out, got


out, pages = run("tess", {"stage": "ocr", "engine": "tesseract"})
vctest.expect(sorted(pages) == ["shared-mime-info-spec_p0001", "shared-mime-info-spec_p0002"],
              "pages %d..%d became samples: %s" % (FIRST, LAST, sorted(pages)))
# A second document from another Debian package and typesetter setup
# (Texinfo: body text, headings and a typewriter-font code listing).
_, tasn = run("tess-tasn1", {"stage": "ocr", "engine": "tesseract"}, urls=PDF2, first_page=5,
              last_page=5)
vctest.expect(sorted(tasn) == ["libtasn1_p0005"], "libtasn1.pdf page 5 became a sample")
total_err = total_len = 0
for key, fields in sorted(pages.items()) + sorted(tasn.items()):
    js = pe.sample_json(fields)
    pdf = PDF2 if key.startswith("libtasn1") else PDF
    w, h = pe.png_size(fields["png"])
    vctest.expect((w, h) == (-(-js["width_pt"] * DPI // 72), -(-js["height_pt"] * DPI // 72)),
                  "%s: a %dx%d PNG, the page size at %d dpi" % (key, w, h, DPI))
    truth = subprocess.run(["pdftotext", "-f", str(js["page"]), "-l", str(js["page"]), pdf, "-"],
                           check=True, capture_output=True, text=True).stdout
    ref, hyp = norm(truth), norm(js["ocr_text"])
    c = cer(hyp, ref)
    total_err += c * len(ref)
    total_len += len(ref)
    print("%s page %d: CER %.4f (%d reference characters)" % (os.path.basename(pdf), js["page"],
                                                               c, len(ref)))
    vctest.expect(js["ocr_text_provenance"]["engine"].startswith("tesseract "),
                  "%s: provenance names tesseract" % key)
overall = total_err / total_len
vctest.expect(overall < 0.05, "Tesseract CER over %d pages of 2 documents: %.4f (< 0.05)" %
              (len(pages) + len(tasn), overall))

# The engine path on the tiny model, pages 1 and 2: at batch 1 with 1
# thread and at batch 16 with 2 threads the same bytes, and each page's ids
# those of vlmcurate generate.
engine = {"stage": "ocr", "model": FIX, "max_new_tokens": 8, "record_ids": True}
out1, got = run("engine-b1-t1", dict(engine, batch=1))
out16, got16 = run("engine-b16-t2", dict(engine, batch=16), threads=2)
vctest.expect(sorted(got) == sorted(pages) and got == got16,
              "engine OCR: batch 16 at 2 threads writes the same samples as batch 1 at 1 thread")
for key, fields in sorted(got.items()):
    prov = pe.sample_json(fields)["ocr_text_provenance"]
    vctest.expect(prov["image_splitting"] is True and prov["prompt"] == OCR_PROMPT,
                  "engine OCR: the OCR prompt with image splitting on")
    with tempfile.NamedTemporaryFile(suffix=".png", dir=args.tmp) as f:
        f.write(fields["png"])
        f.flush()
        r = vctest.run(args, ["generate", "--model", FIX, "--image", f.name, "--chat",
                              OCR_PROMPT, "--image-splitting", "on", "--max-new-tokens", "8",
                              "--ids"])
    ids = [int(x) for x in r.stdout.rstrip("\n").rsplit("\n", 1)[1].split()]
    vctest.expect(ids == prov["generated_ids"] and prov["prompt_tokens"] > 5 * 8,
                  "engine OCR of %s: the ids of vlmcurate generate %s (%d prompt tokens: 5 crops)"
                  % (key, ids, prov["prompt_tokens"]))

# A page over the pixel limits.
spec = {"sources": [{"name": "doc", "type": "pdf", "urls": PDF, "dpi": 1200, "last_page": 1}],
        "stages": [], "output": {"prefix": "big"}, "limits": {"max_pixels": 10000000}}
out = os.path.join(args.tmp, "big")
pe.run_spec(args, pe.write_spec(os.path.join(args.tmp, "big.json"), spec), out)
lines = pe.ledger(out)
vctest.expect([(r["state"], r["reason"]) for r in lines] == [("error", "image_too_large")],
              "a page of %s pixels at 1200 dpi: image_too_large" % "~138M")
print("PASS")
