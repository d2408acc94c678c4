"""A loopback HTTP(S) server for the urls source's tests
(stdlib + PIL only).  It binds 127.0.0.1 only, serves real images made
with PIL, and the faults a crawler meets, by path:

  /img/N.jpg, /img/N.png   a real image (N picks size and colours)
  /slow/N.jpg              the image in small pieces over ~0.6 s
  /stall                   headers, a few bytes, then nothing
  /status/CODE             that status with a short text body
  /flaky/CODE/K/NAME       CODE (with Retry-After when 429) for the first K
                           requests of NAME, then an image
  /retry-after/SECS        429 with Retry-After: SECS, always
  /loop/N                  302 to /loop/N+1, forever
  /redirect                302 to /img/1.jpg
  /truncated               Content-Length says more than is sent
  /lying-length            Content-Length: 10^12 on a small body
  /wrong-type              a JPEG served as text/html
  /html                    HTML served as image/jpeg
  /gzip                    a JPEG with Content-Encoding: gzip
  /endless                 a body that never ends (no Content-Length)
  /robots/VALUE            an image with X-Robots-Tag: VALUE (URL-quoted)
  /hold/MS/N.jpg           an image after MS ms (measures concurrency)

Every request is logged (path, Host, User-Agent, time) for the tests to
check retries, Retry-After, per-host caps and the user agent."""
import gzip
import http.server
import io
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse


def make_image(n, fmt):
    from PIL import Image
    w, h = 24 + n % 40, 16 + (n * 7) % 30
    im = Image.new("RGB", (w, h), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
    for x in range(0, w, 3):
        im.putpixel((x, x % h), (255 - x % 256, 0, 255))
    b = io.BytesIO()
    im.save(b, "JPEG" if fmt == "jpg" else "PNG", quality=90)
    return b.getvalue()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = []           # (path, host, user_agent, t)
        self.counts = {}        # flaky name -> requests seen
        self.inflight = {}      # host -> requests running (/hold)
        self.max_inflight = {}  # host -> the most seen at once
        self.total_inflight = 0
        self.max_total = 0
        self.stop = threading.Event()
        self.images = {}

    def image(self, n, fmt):
        with self.lock:
            if (n, fmt) not in self.images:
                self.images[(n, fmt)] = make_image(n, fmt)
            return self.images[(n, fmt)]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="image/jpeg", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        host = (self.headers.get("Host") or "").split(":")[0]
        with st.lock:
            st.log.append((self.path, host, self.headers.get("User-Agent", ""), time.monotonic()))
        parts = self.path.split("?")[0].strip("/").split("/")
        try:
            self.route(st, host, parts)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def route(self, st, host, parts):
        head = parts[0]
        if head == "img":
            n, fmt = parts[1].split(".")
            return self.send(200, st.image(int(n), fmt), "image/" + ("jpeg" if fmt == "jpg" else fmt))
        if head == "slow":
            body = st.image(int(parts[1].split(".")[0]), "jpg")
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = max(1, len(body) // 6)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if head == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff")
            self.wfile.flush()
            st.stop.wait(60)
            self.close_connection = True
            return
        if head == "status":
            return self.send(int(parts[1]), b"status %s\n" % parts[1].encode(), "text/plain")
        if head == "flaky":
            code, k, name = int(parts[1]), int(parts[2]), parts[3]
            with st.lock:
                seen = st.counts.get(name, 0)
                st.counts[name] = seen + 1
            if seen < k:
                hdr = [("Retry-After", "1")] if code == 429 else []
                return self.send(code, b"try later\n", "text/plain", hdr)
            return self.send(200, st.image(7, "jpg"))
        if head == "retry-after":
            return self.send(429, b"slow down\n", "text/plain", [("Retry-After", parts[1])])
        if head == "loop":
            return self.send(302, b"", "text/plain", [("Location", "/loop/%d" % (int(parts[1]) + 1))])
        if head == "redirect":
            return self.send(302, b"", "text/plain", [("Location", "/img/1.jpg")])
        if head == "truncated":
            body = st.image(3, "jpg")
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if head == "lying-length":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
            self.wfile.write(st.image(4, "jpg"))
            self.close_connection = True
            return
        if head == "wrong-type":
            return self.send(200, st.image(5, "jpg"), "text/html")
        if head == "html":
            return self.send(200, b"<html><body>not an image</body></html>\n", "image/jpeg")
        if head == "gzip":
            return self.send(200, gzip.compress(st.image(6, "png"), mtime=0), "image/png",
                             [("Content-Encoding", "gzip")])
        if head == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b"\xff\xd8\xff\xe0" + bytes(65532)
            while not st.stop.is_set():
                self.wfile.write(chunk)
            return
        if head == "robots":
            value = urllib.parse.unquote(parts[1])
            return self.send(200, st.image(8, "jpg"), "image/jpeg", [("X-Robots-Tag", value)])
        if head == "hold":
            with st.lock:
                st.inflight[host] = st.inflight.get(host, 0) + 1
                st.total_inflight += 1
                st.max_inflight[host] = max(st.max_inflight.get(host, 0), st.inflight[host])
                st.max_total = max(st.max_total, st.total_inflight)
            time.sleep(int(parts[1]) / 1000)
            with st.lock:
                st.inflight[host] -= 1
                st.total_inflight -= 1
            return self.send(200, st.image(int(parts[2].split(".")[0]), "jpg"))
        return self.send(404, b"no such path\n", "text/plain")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, state, context=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state
        if context:
            self.socket = context.wrap_socket(self.socket, server_side=True)


def make_cert(folder, names):
    """A self-signed certificate (made with openssl) for `names`."""
    key, crt = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.pem")
    san = ",".join("DNS:" + n for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=" + names[0],
                    "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    return key, crt


class Servers:
    """An HTTP server and, with tls_names, an HTTPS one, both on 127.0.0.1."""

    def __init__(self, folder=None, tls_names=()):
        self.state = State()
        self.http = Server(self.state)
        self.https = None
        self.ca_file = None
        if tls_names:
            key, crt = make_cert(folder, list(tls_names))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            self.https = Server(self.state, ctx)
            self.ca_file = crt
        self.threads = []
        for s in (self.http, self.https):
            if s:
                t = threading.Thread(target=s.serve_forever, daemon=True)
                t.start()
                self.threads.append(t)

    @property
    def port(self):
        return self.http.server_address[1]

    @property
    def tls_port(self):
        return self.https.server_address[1]

    def close(self):
        self.state.stop.set()
        for s in (self.http, self.https):
            if s:
                s.shutdown()
                s.server_close()
