#!/usr/bin/python3
"""tests/connectors/smtp_server.py, except that a defer451@ recipient is deferred ("451 4.3.0
try again later") only on its first RCPT and accepted afterwards, like a greylisting server.
The daemon tests use it to see a deferred message retried and then delivered.

Run with Debian's interpreter (/usr/bin/python3, package python3-aiosmtpd); same arguments and
output as smtp_server.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "connectors"))

import smtp_server  # noqa: E402

DEFERRED = set()
_original_rcpt = smtp_server.Recorder.handle_RCPT


async def handle_rcpt_once(self, server, session, envelope, address, rcpt_options):
    if address.startswith("defer451@") and address not in DEFERRED:
        DEFERRED.add(address)
        return "451 4.3.0 try again later"
    if address.startswith("defer451@"):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"
    return await _original_rcpt(self, server, session, envelope, address, rcpt_options)


smtp_server.Recorder.handle_RCPT = handle_rcpt_once

if __name__ == "__main__":
    smtp_server.main()
