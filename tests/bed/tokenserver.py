#!/usr/bin/python3
"""Token server for the test bed: the distribution registry's `token` auth (distribution
docs/content/spec/auth/token.md) with RS256 JWTs carrying an x5c chain, signed by the openssl CLI.

Grants the configured user (HTTP Basic on the token request) and callers of an identity token
(OAuth2 refresh-token POST) what a real token server's access list would: of the actions each
scope asks for, pull and push on every repository, except pull alone under `readonly/` (so a push
there is denied with insufficient_scope); anonymous callers get no access. A scope without the
action asked for is still answered with a token, as docker_auth and Docker Hub do: the registry
refuses the request. Every request is appended to a log (method, path, whether Authorization was
present, the scopes) so tests can count token fetches and check the scopes; secrets are never
logged.

usage: tokenserver.py PORT KEY.pem CERT.pem USER PASSWORD REFRESH_TOKEN LOG [EXPIRES_IN]
"""
import base64
import json
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, KEY, CERT, USER, PASSWORD, REFRESH, LOG = sys.argv[1:8]
EXPIRES = int(sys.argv[8]) if len(sys.argv) > 8 else 300
ISSUER = "mar-test-issuer"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cert_der_b64():
    der = subprocess.run(["openssl", "x509", "-in", CERT, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return base64.b64encode(der).decode()


X5C = cert_der_b64()


def sign(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [X5C]}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input,
                         check=True, capture_output=True).stdout
    return signing_input.decode() + "." + b64url(sig)


def allowed(name):
    return ("pull",) if name.startswith("readonly/") else ("pull", "push")


def token_for(service, scopes, granted):
    access = []
    if granted:
        for s in scopes:
            parts = s.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                name = ":".join(parts[1:-1])
                access.append({"type": "repository", "name": name,
                               "actions": [a for a in parts[-1].split(",") if a in allowed(name)]})
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": USER if granted else "", "aud": service, "exp": now + EXPIRES,
              "nbf": now - 10, "iat": now, "jti": b64url(str(time.time_ns()).encode()),
              "access": access}
    return sign(claims)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def record(self, method, scopes, auth):
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": method, "path": self.path.split("?")[0],
                                "auth": auth, "scope": scopes}) + "\n")

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        q = urllib.parse.urlparse(self.path)
        params = urllib.parse.parse_qs(q.query)
        scopes = params.get("scope", [])
        service = params.get("service", [""])[0]
        auth = self.headers.get("Authorization")
        self.record("GET", scopes, bool(auth))
        granted = False
        if auth:
            if not auth.startswith("Basic "):
                return self.reply(401, {"details": "unsupported authorization"})
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                return self.reply(400, {"details": "bad authorization"})
            if user != USER or pw != PASSWORD:
                return self.reply(401, {"details": "invalid credentials"})
            granted = True
        self.reply(200, {"token": token_for(service, scopes, granted), "expires_in": EXPIRES,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        scopes = form.get("scope", [])
        self.record("POST", scopes, bool(self.headers.get("Authorization")))
        if form.get("grant_type", [""])[0] != "refresh_token" or \
                form.get("refresh_token", [""])[0] != REFRESH:
            return self.reply(401, {"error": "invalid_grant"})
        service = form.get("service", [""])[0]
        self.reply(200, {"access_token": token_for(service, scopes[0].split(" ") if scopes else [],
                                                   True), "expires_in": EXPIRES})


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
