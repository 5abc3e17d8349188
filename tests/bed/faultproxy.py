#!/usr/bin/python3
"""Fault-injecting proxy for the test bed (docs/internals/unpack-security.md §6): forwards to a registry and, on
request, breaks the answers in the ways real networks and registries do.

Control (plain HTTP on the same port, never forwarded):
  POST /_faults   body: JSON list of {"match": SUBSTRING, "fault": NAME, "count": N, ...};
                  replaces the active faults. A fault applies to the next N requests whose path
                  (query included) contains SUBSTRING and, with "method", whose method is that
                  one, after skipping the first "skip" of them; then they pass through.
  GET  /_stats    JSON: per path without its query {"requests", "bytes", "sent", "ranges",
                  "statuses", "methods"} ("sent": request body bytes; "ranges": the Range of a
                  GET, the Content-Range of a PATCH) and "redirected": the header names each
                  request to the redirect target carried.
  POST /_reset    clears faults and stats.

Request bodies (PUT, PATCH, POST with a Content-Length) are forwarded, and so is the Host header,
so the upload Locations the registry hands out point at the proxy. distribution keeps an
upload's offset in the _state query of its Location; when the proxy forwards only part of a
PATCH (the drop fault), the upload advances behind the client's back, so the proxy gives the
registry the latest _state it issued for that upload, as a registry that keeps upload state on
its side would.

Faults:
  truncate      sends the headers of the full answer, then `fraction` of the body, then closes
  reset         the same, then a TCP RST (SO_LINGER 0)
  wrongbytes    the body with every byte flipped (same length)
  extra         the body plus `extra` bytes, Content-Length counting them
  status        answers `status` (500, 502, 503, 504, 401, ...) with an empty error body; a 401
                carries `www_authenticate` (default a Basic challenge)
  ratelimit     429 with Retry-After: `retry_after` and ratelimit-* headers
  stall         sends `fraction` of the body, then nothing for `seconds`, then closes; a client
                that hangs up first is counted in the path's `abandoned` (and ends the stall)
  redirect      307 to the same path on the redirect target (another host name for loopback);
                the target records which headers arrived and serves the answer
  redirect-http 307 to http://example.invalid/ (for clients that must refuse plain HTTP)
  slow          sends the body at `rate` bytes per second
  ignore-range  answers a Range request with 200 and the whole body
  bad-range     answers a Range request with 206 and a Content-Range that starts elsewhere
  drop          reads the whole request body, forwards the first `fraction` of a PATCH (its
                Content-Range cut to match), then resets the connection without an answer
  wrongdigest   forwards, then answers with another Docker-Content-Digest
  denied        403 with a DENIED error body
  bigheader     the answer with one extra header line of `size` bytes (default 1 MiB)

usage: faultproxy.py PORT REDIRECT_PORT UPSTREAM_HOST:PORT
Environment: FAULTPROXY_TARGET_AUTH, an Authorization value the redirect target uses upstream
(the client must not send its own there).
"""
import http.client
import json
import os
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, RPORT, UPSTREAM = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
faults = []
stats = {}
redirected = []

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length"}
upload_state = {}


def remember_location(hdrs):
    """Records the query of an upload Location: the registry's latest state of that upload."""
    for k, v in hdrs:
        if k.lower() == "location" and "/blobs/uploads/" in v:
            u = urllib.parse.urlsplit(v)
            with lock:
                upload_state[u.path] = u.query


def with_latest_state(path):
    u = urllib.parse.urlsplit(path)
    with lock:
        latest = upload_state.get(u.path)
    if latest is None or "/blobs/uploads/" not in u.path:
        return path
    theirs = urllib.parse.parse_qsl(latest, keep_blank_values=True)
    names = {k for k, _ in theirs}
    mine = [(k, v) for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)
            if k not in names]
    return u.path + "?" + urllib.parse.urlencode(theirs + mine, safe=":")


def upstream(method, path, headers, body=None):
    conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
    fwd = {k: v for k, v in headers.items() if k.lower() not in HOP}
    if body is not None:
        fwd["Content-Length"] = str(len(body))
    conn.request(method, with_latest_state(path), body=body, headers=fwd)
    resp = conn.getresponse()
    rbody = resp.read() if method != "HEAD" else b""
    hdrs = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
    if method == "HEAD":
        # A HEAD answer has no body but says how long the GET's would be.
        hdrs.append(("X-Head-Length", resp.getheader("Content-Length", "0")))
    conn.close()
    remember_location(hdrs)
    return resp.status, hdrs, rbody


def take_fault(path, method):
    with lock:
        for f in faults:
            if f["match"] not in path or f.get("count", 1) <= 0:
                continue
            if f.get("method") and f["method"] != method:
                continue
            if f.get("skip", 0) > 0:
                f["skip"] -= 1
                continue
            f["count"] = f.get("count", 1) - 1
            return dict(f)
    return None


def note(path, status, nbytes, rng, method="GET", sent=0):
    path = path.split("?")[0]
    with lock:
        s = stats.setdefault(path, {"requests": 0, "bytes": 0, "sent": 0, "ranges": [],
                                    "statuses": [], "methods": []})
        s["requests"] += 1
        s["bytes"] += nbytes
        s["sent"] += sent
        s["statuses"].append(status)
        s["methods"].append(method)
        if rng:
            s["ranges"].append(rng)


def client_left(conn, seconds):
    """Waits up to `seconds` for the client to hang up; True when it did."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([conn], [], [], left)
        if r:
            try:
                if not conn.recv(4096):
                    return True
            except OSError:
                return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_all(self, status, headers, body, length=None):
        self.send_response(status)
        for k, v in headers:
            if k == "X-Head-Length":
                length = int(v)
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self):
        if self.path == "/_faults" and self.command == "POST":
            n = int(self.headers.get("Content-Length", "0"))
            new = json.loads(self.rfile.read(n) or b"[]")
            with lock:
                faults[:] = new
            self.send_all(200, [], b"ok\n")
        elif self.path == "/_reset":
            with lock:
                faults.clear()
                stats.clear()
                redirected.clear()
                upload_state.clear()
            self.send_all(200, [], b"ok\n")
        elif self.path == "/_stats":
            with lock:
                body = json.dumps({"paths": stats, "redirected": redirected}).encode()
            self.send_all(200, [("Content-Type", "application/json")], body)
        else:
            self.send_all(404, [], b"")

    def handle_any(self):
        if self.path.startswith("/_"):
            return self.control()
        # Every body is read first, so an answer that does not forward it keeps the connection
        # usable for the next request.
        body = None
        if self.command in ("PUT", "PATCH", "POST"):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        sent = len(body) if body else 0
        rng = self.headers.get("Range") or self.headers.get("Content-Range")
        f = take_fault(self.path, self.command)
        kind = f["fault"] if f else None
        if kind == "status":
            note(self.path, f["status"], 0, rng, self.command, sent)
            hdrs = [("Content-Type", "application/json")]
            if f["status"] == 401:
                hdrs.append(("WWW-Authenticate", f.get("www_authenticate", 'Basic realm="fault"')))
            return self.send_all(f["status"], hdrs, b'{"errors":[]}')
        if kind == "denied":
            note(self.path, 403, 0, rng, self.command, sent)
            return self.send_all(403, [("Content-Type", "application/json")],
                                 b'{"errors":[{"code":"DENIED","message":"requested access to '
                                 b'the resource is denied"}]}')
        if kind == "ratelimit":
            note(self.path, 429, 0, rng, self.command, sent)
            return self.send_all(429, [("Retry-After", str(f.get("retry_after", 1))),
                                       ("ratelimit-limit", "100;w=21600"),
                                       ("ratelimit-remaining", "0;w=21600")], b"")
        if kind == "drop":
            cut = int(len(body or b"") * float(f.get("fraction", 0.5)))
            if self.command == "PATCH" and cut > 0:
                headers = dict(self.headers.items())
                cr = headers.get("Content-Range", "0-0")
                start = int(cr.split("-")[0])
                headers["Content-Range"] = "%d-%d" % (start, start + cut - 1)
                upstream("PATCH", self.path, headers, body[:cut])
            # Status 0: the client got no answer.
            note(self.path, 0, 0, rng, self.command, sent)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind == "redirect":
            note(self.path, 307, 0, rng)
            loc = "http://localhost:%d%s" % (RPORT, self.path)
            return self.send_all(307, [("Location", loc)], b"")
        if kind == "redirect-http":
            note(self.path, 307, 0, rng)
            return self.send_all(307, [("Location", "http://example.invalid" + self.path)], b"")
        headers = dict(self.headers.items())
        if kind in ("ignore-range", "bad-range"):
            headers.pop("Range", None)
        status, hdrs, body = upstream(self.command, self.path, headers, body)
        if kind == "wrongdigest":
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "docker-content-digest"]
            hdrs.append(("Docker-Content-Digest", "sha256:" + "0" * 64))
        if kind == "ignore-range" and rng:
            status = 200
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-range"]
        if kind == "bad-range" and rng and status == 200:
            start = int(rng.split("=")[1].split("-")[0]) + 1
            status = 206
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-range"]
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body))))
            body = body[start:]
        if kind == "bigheader":
            hdrs.append(("X-Big", "x" * int(f.get("size", 1 << 20))))
        if kind == "wrongbytes":
            body = bytes(b ^ 0xFF for b in body)
        if kind == "extra":
            body = body + b"\0" * int(f.get("extra", 1000))
        if kind in ("truncate", "reset", "stall") and self.command != "HEAD":
            cut = int(len(body) * float(f.get("fraction", 0.5)))
            note(self.path, status, cut, rng, self.command, sent)
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:cut])
            self.wfile.flush()
            if kind == "stall":
                if client_left(self.connection, float(f.get("seconds", 60))):
                    with lock:
                        s = stats[self.path.split("?")[0]]
                        s["abandoned"] = s.get("abandoned", 0) + 1
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        note(self.path, status, len(body) if self.command != "HEAD" else 0, rng, self.command,
             sent)
        if kind == "slow" and self.command != "HEAD":
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = max(1, int(f.get("rate", 1 << 20)) // 20)
            for off in range(0, len(body), step):
                self.wfile.write(body[off:off + step])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.send_all(status, hdrs, body)

    do_GET = handle_any
    do_HEAD = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_PATCH = handle_any
    do_DELETE = handle_any


class Target(BaseHTTPRequestHandler):
    """The redirect target: records the header names it got, then serves from upstream."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        with lock:
            redirected.append({"path": self.path,
                               "headers": sorted(k.lower() for k in self.headers.keys())})
        fwd = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        if os.environ.get("FAULTPROXY_TARGET_AUTH"):
            fwd["Authorization"] = os.environ["FAULTPROXY_TARGET_AUTH"]
        status, hdrs, body = upstream(self.command, self.path, fwd)
        length = len(body)
        self.send_response(status)
        for k, v in hdrs:
            if k == "X-Head-Length":
                length = int(v)
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = handle_any
    do_HEAD = handle_any


ThreadingHTTPServer.daemon_threads = True
# Clients that hang up mid-answer (the point of several tests) are not errors worth a traceback.
ThreadingHTTPServer.handle_error = lambda self, request, client_address: None
target = ThreadingHTTPServer(("127.0.0.1", RPORT), Target)
threading.Thread(target=target.serve_forever, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
