"""Every written image decodes fully, whatever stages the spec lists, and
image fields are recognised by webdataset's key/field rule.

Inputs are made by independent tools only: Pillow draws and encodes the
pictures, Python's tarfile (GNU format) packs the shard, and the damage is
done by hand on the bytes:
  - a JPEG cut in the middle of its scan with an EOI (FF D9) glued on, which
    libjpeg-turbo decodes with the warning "premature end of data segment"
    and Pillow loads without complaint;
  - a JPEG cut short (no EOI);
  - a PNG whose IDAT CRC is wrong, and one whose deflate data is damaged with
    the CRC recomputed (a zlib error, not a CRC error);
  - a WebP whose RIFF size claims more bytes than the file has;
  - a GIF (Pillow), an image we cannot promise to decode.
A spec with no filter stage must write only the good samples, and record
each bad one as an error with its reason; "verify": "header" opts out.
With the default filter chain, the 8x8 icon named `logo.v2.png` (field
`v2.png`) is judged by the image filters, and samples without a decodable
image (caption only, GIF only) do not pass as pairs."""
import io
import os
import struct
import sys
import tarfile
import zlib

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()


def picture(w, h, seed):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 7 + seed) & 255, (y * 5 + seed) & 255, ((x ^ y) * 3 + seed) & 255)
                for y in range(h) for x in range(w)])
    return im


def encode(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def png_chunks(data):
    pos, out = 8, []
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        out.append((pos, data[pos + 4:pos + 8], n))
        pos += 12 + n
    return out


jpg = encode(picture(320, 240, 1), "JPEG", quality=90)
sos = jpg.index(b"\xff\xda")
jpg_cut_eoi = jpg[:sos + (len(jpg) - sos) // 2] + b"\xff\xd9"
jpg_trunc = jpg[:len(jpg) * 2 // 3]
Image.open(io.BytesIO(jpg_cut_eoi)).load()  # Pillow takes it: the damage is silent

png = encode(picture(300, 200, 2), "PNG")
idat = [c for c in png_chunks(png) if c[1] == b"IDAT"][0]
crc_at = idat[0] + 8 + idat[2]
png_bad_crc = png[:crc_at] + bytes([png[crc_at] ^ 0xFF]) + png[crc_at + 1:]
body = bytearray(png[idat[0] + 8:idat[0] + 8 + idat[2]])
for i in range(len(body) // 2, len(body) // 2 + 8):
    body[i] ^= 0x5A
fixed_crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
png_bad_idat = png[:idat[0] + 8] + bytes(body) + fixed_crc + png[crc_at + 4:]

webp = encode(picture(300, 200, 3), "WEBP", quality=80)
webp_lying = webp[:4] + struct.pack("<I", len(webp) - 8 + 4096) + webp[8:]

gif = encode(picture(300, 200, 4), "GIF")
icon = encode(picture(8, 8, 5), "PNG")
caption = b"A red bicycle leaning against a stone wall in the afternoon sun."

samples = [
    ("good", [("jpg", jpg), ("txt", caption)]),
    ("cut_eoi", [("jpg", jpg_cut_eoi), ("txt", caption)]),
    ("trunc", [("jpg", jpg_trunc), ("txt", caption)]),
    ("bad_crc", [("png", png_bad_crc), ("txt", caption)]),
    ("bad_idat", [("png", png_bad_idat), ("txt", caption)]),
    ("webp_riff", [("webp", webp_lying), ("txt", caption)]),
    ("gif_only", [("gif", gif), ("txt", caption)]),
    ("good_png", [("png", png), ("txt", caption)]),
    ("good_webp", [("webp", webp), ("txt", caption)]),
]
BAD = {"cut_eoi", "trunc", "bad_crc", "bad_idat", "webp_riff", "gif_only"}

data = os.path.join(args.tmp, "data")
os.makedirs(data)


def write_tar(path, samples):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        for key, fields in samples:
            for field, payload in fields:
                info = tarfile.TarInfo("%s.%s" % (key, field))
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))


write_tar(os.path.join(data, "in.tar"), samples)


def run(name, stages, tar="in.tar"):
    spec = {"sources": [{"name": "web", "type": "webdataset", "urls": [tar]}],
            "stages": stages, "output": {"prefix": "t"}}
    path = pe.write_spec(os.path.join(data, name + ".json"), spec)
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, path, out, threads=2)
    led = {e["key"]: e for e in pe.ledger(out)}
    written = {k for sh in pe.shards(out, "t") for k, _ in pe.read_samples(sh)}
    return led, written


# 1. No filter stage: verification in the write stage catches every bad file.
led, written = run("nofilter", [])
vctest.expect(written == {"good", "good_png", "good_webp"},
              "no filter stage: only the whole images are written (got %s)" % sorted(written))
for key in sorted(BAD):
    e = led.get(key, {})
    # Headers are fine except the GIF's, which ingest's probe refuses.
    stage = "ingest" if key == "gif_only" else "write"
    vctest.expect(e.get("state") == "error" and e.get("stage") == stage,
                  "%s: an error of the %s stage (got %s)" % (key, stage, e))
vctest.expect(led["cut_eoi"]["reason"] in ("truncated", "decode_error") and
              "premature end" in led["cut_eoi"].get("message", ""),
              "the JPEG cut mid-scan with FF D9 appended fails with libjpeg's warning: %s" %
              led["cut_eoi"].get("message"))
vctest.expect(led["bad_crc"]["reason"] == "decode_error" and
              "CRC" in led["bad_crc"].get("message", ""),
              "the PNG with a bad IDAT CRC is named as such: %s" % led["bad_crc"].get("message"))
vctest.expect(led["gif_only"]["reason"] == "unsupported_format",
              "a GIF is an image we cannot vouch for: unsupported_format")

# 2. "verify": "header" opts out: the damaged files whose header reads are written.
led, written = run("header", [{"stage": "write", "verify": "header"}])
vctest.expect({"cut_eoi", "bad_crc", "bad_idat"} <= written,
              "verify=header writes what only a full decode would refuse (got %s)" %
              sorted(written))

# 3. img_decodes alone judges the cut JPEG as not decoding.
led, written = run("decodes", [{"stage": "filter", "defaults": False,
                                "filters": [{"name": "img_decodes"}]},
                               {"stage": "write", "verify": "header"}])
vctest.expect(led["cut_eoi"]["state"] == "rejected" and
              led["cut_eoi"].get("filter") == "img_decodes",
              "img_decodes rejects the JPEG cut mid-scan with an EOI glued on (got %s)" %
              led["cut_eoi"])

# 4. webdataset's key/field rule: logo.v2.png is key "logo", field "v2.png",
# an image the image filters judge; caption-only and GIF-only samples are
# not pairs.
write_tar(os.path.join(data, "fields.tar"), [
    ("logo", [("v2.png", icon), ("txt", caption)]),
    ("photo", [("v2.jpg", jpg), ("txt", caption)]),
    ("caption_only", [("txt", caption)]),
    ("gif_only", [("gif", gif), ("txt", caption)]),
])
led, written = run("fields", [{"stage": "filter", "defaults": False,
                               "filters": [{"name": "img_width"}, {"name": "img_height"},
                                           {"name": "img_format"}]}], tar="fields.tar")
vctest.expect(led["logo"]["state"] == "rejected" and led["logo"].get("filter") == "img_width",
              "the 8x8 icon in field v2.png is judged by img_width (got %s)" % led["logo"])
vctest.expect(written == {"photo"}, "only the real pair is written (got %s)" % sorted(written))
vctest.expect(led["caption_only"]["state"] == "rejected" and
              led["caption_only"]["reason"] == "missing_image",
              "a caption without an image is not a pair (got %s)" % led["caption_only"])
vctest.expect(led["gif_only"]["state"] in ("rejected", "error"),
              "a GIF-only sample does not pass as a pair (got %s)" % led["gif_only"])
print("all checks passed")
