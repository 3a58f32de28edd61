#!/usr/bin/python3
"""A real SMTP server for SmtpConnector tests: Debian's aiosmtpd with a recording handler.

Run with Debian's interpreter (/usr/bin/python3, package python3-aiosmtpd). Listens on
127.0.0.1 (a free port unless --port is given), prints "PORT <n> PID <pid>" once it accepts
connections, and stores each accepted message in --dir as <n>.eml with its envelope in
<n>.envelope ("<from>" line, then one "<rcpt>" line per recipient). It writes the number of
connections it has seen to --dir/connections. Recipients steer failures:
  reject550@...  -> RCPT answered "550 5.1.1 no such user"
  defer451@...   -> RCPT answered "451 4.3.0 try again later"
  data554@...    -> accepted, then the DATA answered "554 5.6.0 content rejected"
  data452@...    -> accepted, then the DATA answered "452 4.3.1 out of storage"
With --user/--password, AUTH PLAIN is required before MAIL. With --tls starttls or --tls
implicit, the server makes itself a certificate for "localhost" (--dir/cert.pem, which is also
the CA a client should trust) and requires STARTTLS before MAIL, or speaks TLS from the first
byte.
"""
import argparse
import os
import warnings
import signal
import socket
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from test_tls import make_tls_context  # next to this script

LOCK = threading.Lock()
COUNTER = {"messages": 0, "connections": 0}


def bump(key):
    with LOCK:
        COUNTER[key] += 1
        return COUNTER[key]


def write_atomically(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


class Recorder:
    def __init__(self, folder):
        self.folder = folder

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject550@"):
            return "550 5.1.1 no such user"
        if address.startswith("defer451@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("data554@") for r in envelope.rcpt_tos):
            return "554 5.6.0 content rejected"
        if any(r.startswith("data452@") for r in envelope.rcpt_tos):
            return "452 4.3.1 out of storage"
        i = bump("messages")
        base = os.path.join(self.folder, str(i))
        lines = ["<%s>" % envelope.mail_from] + ["<%s>" % r for r in envelope.rcpt_tos]
        with open(base + ".envelope", "w") as f:
            f.write("\n".join(lines) + "\n")
        write_atomically(base + ".eml", envelope.original_content)
        return "250 2.0.0 Ok: queued as TEST%d" % i


class CountingController(Controller):
    """Counts connections: aiosmtpd makes one SMTP protocol object per connection."""

    def __init__(self, handler, folder, **kwargs):
        self.folder = folder
        super().__init__(handler, **kwargs)

    def factory(self):
        n = bump("connections")
        write_atomically(os.path.join(self.folder, "connections"), str(n).encode())
        return SMTP(self.handler, **self.SMTP_kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    warnings.simplefilter("ignore")  # aiosmtpd warns about AUTH without TLS; this is loopback
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    args = parser.parse_args()

    smtp_kwargs = {"decode_data": False, "enable_SMTPUTF8": False}
    if args.user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == args.user and
                  auth_data.password.decode() == args.password)
            # handled=False: aiosmtpd sends the 535 reply itself on failure.
            return AuthResult(success=ok, handled=False)

        # PLAIN only: the tests are about credentials, and one mechanism keeps the exchange
        # predictable. Plain text is fine on loopback.
        smtp_kwargs.update(authenticator=authenticator, auth_required=True,
                           auth_require_tls=False, auth_exclude_mechanism=["LOGIN"])

    controller_kwargs = {}
    if args.tls == "starttls":
        smtp_kwargs.update(tls_context=make_tls_context(args.dir), require_starttls=True)
    elif args.tls == "implicit":
        controller_kwargs["ssl_context"] = make_tls_context(args.dir)

    port = args.port or free_port()
    controller = CountingController(Recorder(args.dir), args.dir, hostname="127.0.0.1",
                                    port=port, ready_timeout=10, **controller_kwargs,
                                    **smtp_kwargs)
    # Controller.start() probes the port with a connection of its own; start the count after.
    controller.start()
    with LOCK:
        COUNTER["connections"] = 0
    try:
        os.remove(os.path.join(args.dir, "connections"))
    except FileNotFoundError:
        pass
    print("PORT %d PID %d" % (port, os.getpid()), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.1):  # a bare wait() would not wake for the signal handler
        pass
    # No controller.stop(): it can wait forever for an event loop that missed its wake-up (seen
    # once in some thousand runs). Exiting closes every socket just as well.
    os._exit(0)


if __name__ == "__main__":
    main()
