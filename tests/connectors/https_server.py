#!/usr/bin/python3
"""A real HTTPS server for HttpPoster tests: Python's http.server behind ssl, standard library only.

Listens on 127.0.0.1 on a port the kernel picks, and prints "PORT <n> PID <pid>" once it accepts
connections. It makes itself a self-signed certificate for the DNS name "localhost" only (no IP
address in it), written to --dir/cert.pem, which is also the CA a client should trust.

It speaks HTTP/1.1 with keep-alive and answers every POST with 201 and {"sid":"SM1"}
(application/json); a request header "X-Reply-Status: <n>" asks for status n instead. Before
answering, it appends the request to --dir/requests.jsonl as one JSON object per line:
  {"path": ..., "headers": {<lower-case name>: <first value>}, "body": <UTF-8 text>,
   "remote_port": <the client's port: equal ports mean a reused connection>}
so a client that has its answer can read its request there. A connection whose TLS handshake
fails records nothing.

It stops on SIGTERM or SIGINT, and by itself once its parent process is gone.
"""
import argparse
import http.server
import json
import os
import signal
import ssl
import threading

from test_tls import make_tls_context  # next to this script

LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open between requests
    timeout = 10  # an idle connection is dropped after this many seconds

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        record = {"path": self.path, "headers": headers,
                  "body": body.decode("utf-8", errors="replace"),
                  "remote_port": self.client_address[1]}
        with LOCK:
            with open(os.path.join(self.server.folder, "requests.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        status = int(self.headers.get("X-Reply-Status") or 201)
        answer = b'{"sid":"SM1"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):
        pass  # the tests read requests.jsonl, not a log


class TlsServer(http.server.ThreadingHTTPServer):
    """Accepts plain TCP and does each TLS handshake on the connection's own thread, so a client
    that stalls or fails its handshake holds up no one else."""

    daemon_threads = True

    def __init__(self, folder, context):
        self.folder = folder
        self.context = context
        super().__init__(("127.0.0.1", 0), Handler)

    def finish_request(self, request, client_address):
        request.settimeout(Handler.timeout)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused the certificate, or went away
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        pass  # a client closing its connection mid-request is no news here


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()

    server = TlsServer(args.dir, make_tls_context(args.dir))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The socket listens since the constructor: connections are accepted from here on.
    print("PORT %d PID %d" % (server.server_address[1], os.getpid()), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(0.1) and os.getppid() == parent:  # a bare wait() ignores signals
        pass
    os._exit(0)  # at once: every request is on disk, and kept connections need no goodbye


if __name__ == "__main__":
    main()
