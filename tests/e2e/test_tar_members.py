"""Every tar member ends up in the ledger: in its sample's line or in a line
of its own, with a reason; a sample made only of members the reader cannot
take still counts in totals.input.

The shards are written by Python's tarfile in each of its three formats
(ustar, GNU, pax), with the members webdataset's reader skips: a name over
4,096 bytes (pax and GNU only: ustar cannot hold one), a basename starting
with a dot, `key.` with nothing after the dot, no extension, a top-level
`__meta__`, a hard link, a symbolic link, a FIFO, a character and a block
device, and a sample made only of links.  A directory entry holds no data
and is the one member without a line."""
import io
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(data)
png = vctest.png_bytes(16, 16)


def reg(name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def special(name, kind, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


def members(fmt):
    out = [
        (tarfile.TarInfo("dir"), None),  # set to a directory below
        reg("good.png", png), reg("good.txt", b"a good caption"),
        reg(".hidden.png", png),
        reg("nodot", b"no extension"),
        reg("trail.", b"nothing after the dot"),
        reg("__meta__", b"shard metadata"),
        reg("mixed.png", png), special("mixed.txt", tarfile.SYMTYPE, "/etc/passwd"),
        special("hard.png", tarfile.LNKTYPE, "good.png"),
        special("links.jpg", tarfile.SYMTYPE, "/etc/passwd"),
        special("links.txt", tarfile.SYMTYPE, "/etc/shadow"),
        special("pipe.fifo", tarfile.FIFOTYPE),
        special("tty.dev", tarfile.CHRTYPE),
        special("disk.dev", tarfile.BLKTYPE),
        special("fifo_no_ext", tarfile.FIFOTYPE),
        reg("last.png", png), reg("last.txt", b"the last caption"),
    ]
    out[0][0].type = tarfile.DIRTYPE
    if fmt != tarfile.USTAR_FORMAT:
        out.insert(3, reg("d/" + "x" * 4200 + ".png", png))
    return out


# What each line must say: key -> (state, reason).  Long names are cut.
EXPECT = {
    "good": ("written", None),
    ".hidden.png": ("error", "bad_member_name"),
    "nodot": ("error", "bad_member_name"),
    "trail.": ("error", "bad_member_name"),
    "__meta__": ("error", "bad_member_name"),
    "mixed": ("error", "not_regular_file"),
    "hard": ("error", "not_regular_file"),
    "links": ("error", "not_regular_file"),
    "pipe": ("error", "not_regular_file"),
    "tty": ("error", "not_regular_file"),
    "disk": ("error", "not_regular_file"),
    "fifo_no_ext": ("error", "not_regular_file"),
    "last": ("written", None),
}

for label, fmt in (("ustar", tarfile.USTAR_FORMAT), ("gnu", tarfile.GNU_FORMAT),
                   ("pax", tarfile.PAX_FORMAT)):
    tar = os.path.join(data, label + ".tar")
    with tarfile.open(tar, "w", format=fmt) as t:
        for info, payload in members(fmt):
            t.addfile(info, io.BytesIO(payload) if payload is not None else None)
    n_members = sum(1 for m in tarfile.open(tar) if not m.isdir())
    spec = {"sources": [{"name": "web", "type": "webdataset", "urls": [label + ".tar"]}],
            "stages": [], "output": {"prefix": "t"}}
    out = os.path.join(args.tmp, "out-" + label)
    pe.run_spec(args, pe.write_spec(os.path.join(data, label + ".json"), spec), out)
    led = pe.ledger(out)
    by_key = {e["key"]: e for e in led}
    for key, (state, reason) in EXPECT.items():
        e = by_key.get(key, {})
        vctest.expect(e.get("state") == state and e.get("reason") == reason,
                      "%s: %s is %s/%s (got %s)" % (label, key, state, reason, e))
    if fmt != tarfile.USTAR_FORMAT:
        long = [e for e in led if e["key"].startswith("d/xxx")]
        vctest.expect(len(long) == 1 and long[0]["reason"] == "bad_member_name" and
                      long[0]["key"].endswith("...") and len(long[0]["key"]) < 300,
                      "%s: the 4,202-byte name has a line with its name cut (got %s)" %
                      (label, [(e["key"][:20], e["reason"]) for e in long]))
    tot = pe.run_json(out)["totals"]
    # Lines: every sample (good, mixed, links, last, hard, pipe, tty, disk)
    # and every member that cannot be keyed.
    vctest.expect(tot["input"] == len(led) and pe.totals_add_up(tot),
                  "%s: totals.input %d equals the %d ledger lines and adds up" %
                  (label, tot["input"], len(led)))
    vctest.expect(tot["input"] == len(EXPECT) + (fmt != tarfile.USTAR_FORMAT),
                  "%s: %d members (directory left out) make %d lines" %
                  (label, n_members, tot["input"]))
print("all checks passed")
