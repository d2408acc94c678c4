"""The urls source against a loopback HTTP(S) server (127.0.0.1 only: every
test hostname is mapped there through the spec's fetch.resolve) that
serves real images and the faults a crawler meets.  Every URL must end in
the ledger with the state and reason it deserves, retries must follow the
policy (counted on the server), Retry-After must be waited for, the per-host
cap must hold, the user agent must name the tool and the token, the bytes
written must be the bytes served (gzip decoded), run.json must give the
success rate and the error breakdown, and a second run must resume without
a single request.  A documents source with image URLs (OBELICS rows) gets
its images the same way: failed ones are dropped with their reason."""
import collections
import csv
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import http_faults  # noqa: E402
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
for k in list(os.environ):
    if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        del os.environ[k]  # libcurl would send loopback requests to a proxy

srv = http_faults.Servers(args.tmp, tls_names=["img.test"])
P, T = srv.port, srv.tls_port
# A port with nothing listening: bound (so that no other process running
# beside this test can take it) but never listened on, so connecting is
# refused; it stays bound until the test ends.
unlistened = socket.socket()
unlistened.bind(("127.0.0.1", 0))
closed_port = unlistened.getsockname()[1]


def ok(path):
    return "http://ok.test:%d%s" % (P, path)


# (url, state, reason); reason None for written.
CASES = [
    (ok("/img/1.jpg"), "written", None),
    (ok("/img/2.png"), "written", None),
    (ok("/slow/3.jpg"), "written", None),
    (ok("/stall"), "error", "timeout"),
    (ok("/status/404"), "error", "http_404"),
    (ok("/status/403"), "error", "http_403"),
    (ok("/status/500"), "error", "http_5xx"),
    (ok("/status/418"), "error", "http_4xx"),
    (ok("/flaky/503/1/a"), "written", None),
    (ok("/flaky/429/1/b"), "written", None),
    (ok("/retry-after/3600"), "error", "http_429"),
    (ok("/loop/0"), "error", "too_many_redirects"),
    (ok("/redirect"), "written", None),
    (ok("/truncated"), "error", "truncated"),
    (ok("/lying-length"), "error", "too_large"),
    (ok("/wrong-type"), "written", None),
    (ok("/html"), "error", "not_an_image"),
    (ok("/gzip"), "written", None),
    (ok("/endless"), "error", "too_large"),
    (ok("/robots/noai"), "error", "disallowed_by_header"),
    (ok("/robots/noindex%2C%20nofollow"), "error", "disallowed_by_header"),
    (ok("/robots/otherbot%3A%20noai"), "written", None),
    (ok("/robots/mylab-curation%3A%20noimageai"), "error", "disallowed_by_header"),
    (ok("/robots/noarchive"), "written", None),
    ("http://optout.test:%d/img/9.jpg" % P, "error", "opted_out"),
    ("http://cdn.optout.test:%d/img/9.jpg" % P, "error", "opted_out"),
    (ok("/img/99.jpg"), "error", "opted_out"),
    ("ftp://ok.test/x.jpg", "error", "bad_url"),
    ("file:///etc/passwd", "error", "bad_url"),
    ("", "error", "missing_field"),
    # White space around a URL (padded CSV/TSV cells) is stripped, as
    # img2dataset-style tools do; white space alone is no URL.
    (" \t%s \r\n" % ok("/img/15.jpg"), "written", None),
    (" \t ", "error", "missing_field"),
    ("http://127.0.0.1:%d/img/1.jpg" % closed_port, "error", "connect_failed"),
    ("https://img.test:%d/img/11.jpg" % T, "written", None),
    ("https://wrong.test:%d/img/12.jpg" % T, "error", "tls"),
]
# One unit of a CSV list: 5 URLs on a.test and 3 on b.test that each hold
# their request 300 ms, to watch the per-host cap.
HOLD = ["http://a.test:%d/hold/300/%d.jpg" % (P, 20 + i) for i in range(5)] + \
       ["http://b.test:%d/hold/300/%d.jpg" % (P, 30 + i) for i in range(3)]

data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "list.jsonl"), "w") as f:
    for i, (url, _, _) in enumerate(CASES):
        f.write(json.dumps({"url": url, "caption": "case %d" % i, "id": i}) + "\n")
with open(os.path.join(data, "hold.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "url", "caption"])
    for i, url in enumerate(HOLD):
        w.writerow([100 + i, url if i else "  %s  " % url, "hold %d" % i])
DOC = {"id": "d1", "texts": ["hello", None, None, None, "bye", None],
       "images": [None, ok("/img/13.jpg"), ok("/status/404?doc"),
                  "http://optout.test:%d/img/9.jpg" % P, None, ok("/img/14.png")]}
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    f.write(json.dumps(DOC) + "\n")
    f.write(json.dumps({"id": "d2", "texts": ["text only"], "images": [None]}) + "\n")
with open(os.path.join(data, "optout.txt"), "w") as f:
    f.write("# domains and URLs whose owners opted out\noptout.test\n%s\n" % ok("/img/99.jpg"))
resolve = ["%s:%d:127.0.0.1" % (h, P) for h in ("ok.test", "optout.test", "cdn.optout.test",
                                                  "a.test", "b.test")]
resolve += ["%s:%d:127.0.0.1" % (h, T) for h in ("img.test", "wrong.test")]
fetch = {"concurrency": 16, "per_host": 3, "timeout_s": 2, "connect_timeout_s": 2, "retries": 1,
         "retry_backoff_s": 0.2, "max_retry_after_s": 5, "max_redirects": 3, "max_bytes": 300000,
         "user_agent_token": "mylab-curation", "opt_out": "optout.txt", "ca_file": srv.ca_file,
         "resolve": resolve}
spec = {
    "sources": [{"name": "web", "type": "urls", "files": ["list.jsonl", "hold.csv"],
                 "url_col": "url", "caption_col": "caption", "save_cols": ["id"],
                 "urls_per_unit": 8, "fetch": fetch},
                {"name": "docs", "type": "documents", "path": "docs.jsonl", "fetch": fetch}],
    "stages": [{"stage": "ingest"}, {"stage": "stats"}, {"stage": "write"}],
    "output": {"dir": "out", "prefix": "web", "samples_per_shard": 100},
}
spec_path = pe.write_spec(os.path.join(data, "spec.json"), spec)
out = os.path.join(args.tmp, "out")
t0 = time.monotonic()
try:
    pe.run_spec(args, spec_path, out, threads=2)
    elapsed = time.monotonic() - t0
    log = list(srv.state.log)
    n_requests = len(log)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # Resume: a second run over the same output fetches nothing.
    pe.run_spec(args, spec_path, out, threads=2)
    resumed_requests = len(srv.state.log) - n_requests
    # One thread instead of two: the same bytes.
    out1 = os.path.join(args.tmp, "out-1thread")
    pe.run_spec(args, spec_path, out1, threads=1)
finally:
    srv.close()

vctest.expect(elapsed < 60, "the run ends in bounded time (%.1f s)" % elapsed)
# The endless body streams ~250 MB/s over loopback for the whole 2 s
# timeout if nothing stops it; max_bytes (300 KB) must.  (Peak is ~20 MB,
# ~60 MB under ASan.)
vctest.expect(peak_rss_mb < 150, "an endless body is cut at max_bytes: peak RSS %.0f MB" %
              peak_rss_mb)
pe.compare_trees(out, out1, "--threads 2 and --threads 1")
all_led = pe.ledger(out)
led = [e for e in all_led if e["source"] == "web"]
jsonl_rows = [e for e in led if e["file"].endswith("list.jsonl")]
vctest.expect(len(led) == len(CASES) + len(HOLD),
              "every URL has exactly one ledger line (%d of %d)" % (len(led), len(CASES) + len(HOLD)))
for e in jsonl_rows:
    url, state, reason = CASES[e["index"]]
    got = (e["state"], e.get("reason"))
    vctest.expect(got == (state, reason), "%-45s -> %s %s (want %s %s)" %
                  (url or "(empty)", got[0], got[1] or "", state, reason or ""))
hold_rows = [e for e in led if e["file"].endswith("hold.csv")]
vctest.expect(len(hold_rows) == 8 and all(e["state"] == "written" for e in hold_rows),
              "the 8 held CSV URLs are written")

# Retries and Retry-After, counted on the server.
paths = collections.Counter(p for p, _, _, _ in log)
vctest.expect(paths["/status/500"] == 2 and paths["/stall"] == 2,
              "500 and a stalled response are tried retries+1 = 2 times (%d, %d)" %
              (paths["/status/500"], paths["/stall"]))
vctest.expect(paths["/status/404"] == 1 and paths["/status/403"] == 1,
              "404 and 403 are not retried")
vctest.expect(paths["/retry-after/3600"] == 1,
              "a Retry-After above max_retry_after_s ends the URL without waiting")
times = [t for p, _, _, t in log if p == "/flaky/429/1/b"]
vctest.expect(len(times) == 2 and times[1] - times[0] >= 0.95,
              "429 with Retry-After: 1 is retried after %.2f s (>= 1 s)" %
              (times[1] - times[0] if len(times) == 2 else -1))
vctest.expect(paths["/flaky/503/1/a"] == 2, "a 503 is retried once and then succeeds")
vctest.expect(sum(1 for p in paths if p.startswith("/loop/")) == 4,
              "a redirect loop stops after max_redirects (3) redirects")
vctest.expect(not any("optout" in h for _, h, _, _ in log) and paths["/img/99.jpg"] == 0,
              "opted-out URLs and domains are never requested")
vctest.expect(srv.state.max_inflight.get("a.test") == 3 and srv.state.max_total >= 4,
              "per_host 3 holds (a.test at most %s at once) while other hosts run (%d at once)" %
              (srv.state.max_inflight.get("a.test"), srv.state.max_total))
uas = {ua for _, _, ua, _ in log}
vctest.expect(len(uas) == 1 and list(uas)[0].startswith("vlmcurate/")
              and "mylab-curation" in list(uas)[0], "user agent names tool and token: %s" % uas)
vctest.expect(resumed_requests == 0, "the resumed run makes no request (%d)" % resumed_requests)

# The bytes written are the bytes served.
served = {ok("/img/1.jpg"): http_faults.make_image(1, "jpg"),
          ok("/img/2.png"): http_faults.make_image(2, "png"),
          ok("/gzip"): http_faults.make_image(6, "png"),
          ok("/wrong-type"): http_faults.make_image(5, "jpg"),
          ok("/redirect"): http_faults.make_image(1, "jpg"),
          "https://img.test:%d/img/11.jpg" % T: http_faults.make_image(11, "jpg"),
          ok("/img/15.jpg"): http_faults.make_image(15, "jpg")}
found = {}
for shard in pe.shards(out, "web"):
    for key, fields in pe.read_samples(shard):
        meta = pe.sample_json(fields)
        found[meta.get("url")] = (pe.main_image(fields)[1], fields.get("txt"), meta)
vctest.expect(all(found.get(u, (None,))[0] == b for u, b in served.items()),
              "written images are byte-identical to what the server sent (gzip decoded)")
vctest.expect(HOLD[0] in found, "a padded CSV URL is written with its json url stripped")
img1 = found.get(ok("/img/1.jpg"))
vctest.expect(img1 is not None and img1[1] == b"case 0" and img1[2].get("id") == 0,
              "caption goes to txt and save_cols to json (%r)" % (img1[1:] if img1 else None,))

docs = {}
for shard in pe.shards(out, "web"):
    for key, fields in pe.read_samples(shard):
        meta = pe.sample_json(fields)
        if meta.get("id") in ("d1", "d2"):
            docs[meta["id"]] = (fields, meta)
d1 = docs.get("d1", ({}, {}))
vctest.expect([e["state"] for e in all_led if e["source"] == "docs"] == ["written", "written"],
              "both documents are written")
vctest.expect(d1[0].get("0.jpg") == http_faults.make_image(13, "jpg") and
              d1[0].get("1.png") == http_faults.make_image(14, "png"),
              "a document's URL images are downloaded into 0.jpg and 1.png")
vctest.expect([(x["index"], x["reason"]) for x in d1[1].get("dropped_images", [])] ==
              [(2, "http_404"), (3, "opted_out")],
              "failed and opted-out document images are dropped with their reasons: %s" %
              d1[1].get("dropped_images"))
vctest.expect(d1[1].get("images") == [None, "0.jpg", None, "1.png"] and
              d1[1].get("texts") == ["hello", None, "bye", None],
              "the document's lists lose the dropped positions")

run = pe.run_json(out)
src = run["sources"]["web"]
want_err = collections.Counter(r for _, st, r in CASES if st == "error")
vctest.expect(src.get("errors") == dict(want_err),
              "run.json gives the error breakdown by reason: %s" % src.get("errors"))
n_ok = sum(1 for _, st, _ in CASES if st == "written") + len(HOLD)
vctest.expect(abs(src.get("success_rate", -1) - n_ok / (len(CASES) + len(HOLD))) < 1e-9,
              "run.json gives the success rate (%s)" % src.get("success_rate"))
vctest.expect(pe.totals_add_up(run["totals"]), "totals add up")
stats = json.load(open(os.path.join(out, "stats.json")))
audit = {k: v["count"] for k, v in
         stats["groups"]["source:web"]["counters"].get("error", {}).items()}
vctest.expect(audit == dict(want_err), "the audit's stats.json has the same error breakdown: %s"
              % audit)
# A list that is not parquet although named so or declared so (a Git LFS
# pointer left by a clone without git-lfs, a CSV under "format": "parquet")
# is refused as not parquet: it used to be read as a one-column CSV and
# refused for lacking a 'url' column, which points the user the wrong way.
with open(os.path.join(data, "lfs.parquet"), "w") as f:
    f.write("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize 123456\n" % ("0" * 64))
for files, fmt, want in [("lfs.parquet", None, "a Git LFS pointer, not the file"),
                         ("hold.csv", "parquet", "not a valid parquet file (no PAR1 magic")]:
    bad = {"sources": [{"name": "web", "type": "urls", "files": files}],
           "stages": [{"stage": "write"}], "output": {"dir": "out-bad"}}
    if fmt:
        bad["sources"][0]["format"] = fmt
    r = pe.run_spec(args, pe.write_spec(os.path.join(data, "bad.json"), bad),
                    os.path.join(args.tmp, "out-bad"), check=False)
    vctest.expect(r.returncode == 2 and want in r.stderr and "has no column" not in r.stderr,
                  "%s (format %s) is refused as not parquet: %s" % (files, fmt or "auto",
                                                                    r.stderr.strip()[-160:]))
# A compressed list (img2dataset reads cc12m.tsv.gz) is refused by name:
# it was read as text and refused for "a NUL byte at byte 3".
import gzip  # noqa: E402
with open(os.path.join(data, "cc12m.tsv.gz"), "wb") as f:
    f.write(gzip.compress(("url\tcaption\n%s\ta cat\n" % ok("/img/1.jpg")).encode()))
gz = {"sources": [{"name": "web", "type": "urls", "files": "cc12m.tsv.gz"}],
      "stages": [{"stage": "write"}], "output": {"dir": "out-bad"}}
r = pe.run_spec(args, pe.write_spec(os.path.join(data, "bad.json"), gz),
                os.path.join(args.tmp, "out-bad"), check=False)
vctest.expect(r.returncode == 2 and "cc12m.tsv.gz is gzip-compressed" in r.stderr and
              "decompress it first" in r.stderr,
              "a gzip list is refused naming the compression: %s" % r.stderr.strip()[-160:])

# A column the file lacks: the error lists the file's columns, points at
# one differing only in case (LAION's upper-case URL/TEXT against the
# default url) and says when the "header" is a data row (CC3M's TSV ships
# without one).
with open(os.path.join(data, "laion.csv"), "w") as f:
    f.write("URL,TEXT,WIDTH\n%s,a cat,640\n" % ok("/img/1.jpg"))
with open(os.path.join(data, "cc3m.tsv"), "w") as f:
    f.write("a cat on a mat\t%s\n" % ok("/img/1.jpg"))
for files, cols, want in [
        ("laion.csv", {}, "no column 'url' (url_col; did you mean 'URL'?); "
                          "its columns: 'URL', 'TEXT', 'WIDTH'"),
        ("laion.csv", {"url_col": "URL", "save_cols": ["width"]},
         "no column 'width' (save_cols; did you mean 'WIDTH'?)"),
        ("cc3m.tsv", {}, "a URL is a column name, so the file has no header row")]:
    bad = {"sources": [dict({"name": "web", "type": "urls", "files": files}, **cols)],
           "stages": [{"stage": "write"}], "output": {"dir": "out-bad"}}
    r = pe.run_spec(args, pe.write_spec(os.path.join(data, "bad.json"), bad),
                    os.path.join(args.tmp, "out-bad"), check=False)
    vctest.expect(r.returncode == 2 and want in r.stderr,
                  "%s %s: the error says what the file has: %s" % (files, cols,
                                                                   r.stderr.strip()[-200:]))
# A caption that is not UTF-8 (a Latin-1 CSV) is refused before its image
# is fetched, as ingest would refuse it after: nothing is downloaded only to
# be thrown away.  (The server is closed by now: a fetch would fail as
# connect_failed instead.)
with open(os.path.join(data, "latin1.csv"), "wb") as f:
    f.write(b"url,caption\n%s,caf\xe9 au lait\n" % ok("/img/1.jpg").encode())
lat = {"sources": [{"name": "web", "type": "urls", "files": "latin1.csv",
                    "fetch": {"resolve": resolve, "connect_timeout_s": 2, "retries": 0}}],
       "stages": [{"stage": "write"}], "output": {"dir": "out-latin1"}}
out_lat = os.path.join(args.tmp, "out-latin1")
pe.run_spec(args, pe.write_spec(os.path.join(data, "latin1.json"), lat), out_lat)
got = [(e["state"], e.get("reason")) for e in pe.ledger(out_lat)]
vctest.expect(got == [("error", "text_not_utf8")],
              "a non-UTF-8 caption is text_not_utf8 without a request: %s" % got)
# LAION's caption column is TEXT: with url_col set and caption_col left at
# its default, every sample would lose its caption without a word.
quiet = {"sources": [{"name": "web", "type": "urls", "files": "laion.csv", "url_col": "URL",
                      "fetch": {"connect_timeout_s": 1, "retries": 0}}],
         "stages": [{"stage": "write"}], "output": {"dir": "out-bad"}}
r = pe.run_spec(args, pe.write_spec(os.path.join(data, "bad.json"), quiet),
                os.path.join(args.tmp, "out-bad"), check=False)
vctest.expect("has no column 'caption' (caption_col's default) but has 'TEXT'" in r.stderr and
              r.stderr.count("caption_col's default") == 1,
              "a list whose captions are under TEXT warns once: %s" % r.stderr.strip()[-200:])
print("all checks passed")
