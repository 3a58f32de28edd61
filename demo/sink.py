#!/usr/bin/env python3
"""A tiny HTTP sink for the demo: stands in for Slack and for the CRM's webhook endpoint.

Every POST is answered 200 "ok" and appended to a JSON Lines log, one line per request:
    {"at": ..., "path": "/hooks/anna", "idempotency_key": ..., "signature": "valid",
     "body": {...}}
"signature" is "valid" or "INVALID" when an Itinera-Signature header came with the request and
DEMO_CRM_SECRET is set (HMAC-SHA256 over "<t>.<body>", as connectors/webhook.h signs), "none"
when the request was not signed. Python standard library only.

    python3 demo/sink.py --port 9009 --log demo/var/sink.jsonl
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def check_signature(header, secret, body):
    """Verifies "t=<unix seconds>,v1=<hex>" against the body; returns "valid", "INVALID" or "none"."""
    if not header:
        return "none"
    if not secret:
        return "unchecked (DEMO_CRM_SECRET not set)"
    parts = dict(item.strip().split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "valid" if hmac.compare_digest(expected, signature) else "INVALID"


def make_handler(log_path, secret):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                parsed = body.decode("utf-8", "replace")
            record = {
                "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "path": self.path,
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "signature": check_signature(self.headers.get("Itinera-Signature"), secret, body),
                "body": parsed,
            }
            with lock, open(log_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self):  # a health probe for scripts/demo
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, fmt, *args):  # quiet: the log file is the record
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9009)
    parser.add_argument("--log", required=True, help="JSON Lines file to append requests to")
    args = parser.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    handler = make_handler(args.log, os.environ.get("DEMO_CRM_SECRET", ""))
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as e:
        sys.exit(f"sink: cannot listen on {args.host}:{args.port}: {e}")
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
