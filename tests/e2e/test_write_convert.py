"""Re-encoding in the write stage names each image field by the bytes it
writes, whatever extension the input member had.

Web downloads are saved under the URL's extension, so webdataset shards
hold PNGs in `.jpg` members and JPEGs in `.png` ones.  Pillow draws and
encodes the pictures, Python's tarfile packs the shard.  Expectations:
  - "encode_format": "jpg" with resizing: a PNG in a `.jpg` member is
    written (it was an error "re-encoding would give a second field 'jpg'"),
    as a JPEG in field `jpg`; a JPEG in a `.png` member becomes field `jpg`;
    a `.jpeg` member keeps its name, which already says JPEG;
  - "encode_format": "png" without resizing: a PNG in a `.jpg` member is
    written in field `png` (it stayed a `.jpg` holding a PNG, which
    `to_tuple("png")` in a trainer never finds);
  - "encode_format": "keep" with resizing: the PNG in `.jpg` stays a PNG and
    its field says so (`png`);
  - in every case the ledger has one line per input sample, all written,
    and the json's `vlmcurate.format` agrees with the field and the bytes;
  - a resized image's json keeps the size it had (`original_width`,
    `original_height`, as img2dataset writes them) beside the size written;
    an image only converted has none."""
import io
import os
import sys
import tarfile

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(data)


def encode(fmt, seed):
    im = Image.new("RGB", (120, 80))
    im.putdata([((x * 3 + seed) & 255, (y * 5) & 255, (x ^ y) & 255)
                for y in range(80) for x in range(120)])
    b = io.BytesIO()
    im.save(b, fmt)
    return b.getvalue()


caption = b"a striped test card on a grey wall"
samples = [
    ("png_as_jpg", "jpg", encode("PNG", 1)),
    ("jpg_as_png", "png", encode("JPEG", 2)),
    ("jpg_as_jpeg", "jpeg", encode("JPEG", 3)),
    ("plain_jpg", "jpg", encode("JPEG", 4)),
]
members = []
for key, field, payload in samples:
    members += [("%s.%s" % (key, field), payload), ("%s.txt" % key, caption)]
with open(os.path.join(data, "in.tar"), "wb") as f:
    f.write(pe.tar_bytes(members, tarfile.GNU_FORMAT))

PIL_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def run(name, write):
    spec = {"sources": [{"name": "web", "type": "webdataset", "urls": "in.tar"}],
            "stages": [dict(write, stage="write")], "output": {"prefix": "t"}}
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, pe.write_spec(os.path.join(data, name + ".json"), spec), out, threads=2)
    led = pe.ledger(out)
    vctest.expect(len(led) == len(samples) and all(e["state"] == "written" for e in led),
                  "%s: every sample written, one ledger line each (got %s)" %
                  (name, [(e["key"], e["state"], e.get("message")) for e in led]))
    fields, sizes = {}, {}
    for shard in pe.shards(out, "t"):
        for key, sample in pe.read_samples(shard):
            ext, payload = pe.main_image(sample)
            fmt = PIL_EXT[Image.open(io.BytesIO(payload)).format]
            meta = pe.tool_meta(sample)
            vctest.expect(meta.get("format") == fmt,
                          "%s: %s: json format %s matches the bytes (%s)" %
                          (name, key, meta.get("format"), fmt))
            fields[key] = (ext, fmt)
            sizes[key] = tuple(meta.get(k) for k in
                               ("width", "height", "original_width", "original_height"))
    sizes_seen[name] = sizes
    return fields


sizes_seen = {}


got = run("to_jpg", {"resize_mode": "keep_ratio", "image_size": 64, "encode_format": "jpg"})
vctest.expect(got["jpg_as_jpeg"] == ("jpeg", "jpg") and
              all(v == ("jpg", "jpg") for k, v in got.items() if k != "jpg_as_jpeg"),
              "encode_format jpg: every image is a JPEG in field jpg, or jpeg where it was "
              "(got %s)" % got)

got = run("to_png", {"encode_format": "png"})
vctest.expect(all(v == ("png", "png") for v in got.values()),
              "encode_format png: every image is a PNG in field png (got %s)" % got)

got = run("keep", {"resize_mode": "keep_ratio", "image_size": 64})
vctest.expect(got["png_as_jpg"] == ("png", "png") and got["jpg_as_png"] == ("jpg", "jpg") and
              got["jpg_as_jpeg"] == ("jpeg", "jpg") and got["plain_jpg"] == ("jpg", "jpg"),
              "encode_format keep: formats kept, fields named by their bytes (got %s)" % got)
# The pictures are 120x80: keep_ratio 64 writes 96x64 and records 120x80.
for name in ("to_jpg", "keep"):
    vctest.expect(all(v == (96, 64, 120, 80) for v in sizes_seen[name].values()),
                  "%s: resized to 96x64, original 120x80 in the json (got %s)" %
                  (name, sizes_seen[name]))
vctest.expect(all(v == (120, 80, None, None) for v in sizes_seen["to_png"].values()),
              "to_png: not resized, no original size (got %s)" % sizes_seen["to_png"])
print("all checks passed")
