#!/usr/bin/env python3
"""The client side of scripts/demo: talks to `itinera serve` over HTTP and reads what it sent.

Python standard library only (urllib, email, json), so a fresh Debian needs nothing else.

    demo.py ports                          print two free ports: the API's and the sink's
    demo.py config --api-port P --sink-port S --run-dir DIR
                                           write DIR/itinera.toml from demo/itinera.toml
    demo.py wait-http URL SECONDS          wait until URL answers 200
    demo.py play --api URL --run-dir DIR   put the customers, post the events, open, click and
                                           unsubscribe like real people, wait for the story to end
    demo.py report --api URL --run-dir DIR print what happened
"""

import argparse
import datetime
import email
import email.policy
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
JOURNEY = "showroom_test_drive"
PREFERRED_API_PORT = 8080
PREFERRED_SINK_PORT = 9009


class DemoError(Exception):
    pass


# ---- HTTP --------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a click answers 302: show it, do not follow it off to the internet


_opener = urllib.request.build_opener(_NoRedirect)


def http(method, url, body=None, timeout=10):
    """Returns (status, headers, text). Never raises for an HTTP status; raises DemoError when
    the server cannot be reached."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        raise DemoError(f"{method} {url}: cannot reach the server: {getattr(e, 'reason', e)}")


def api_json(method, url, body=None, expect=(200,)):
    status, _, text = http(method, url, body)
    if status not in expect:
        raise DemoError(f"{method} {url} answered {status}: {text.strip()}")
    return json.loads(text) if text else None


# ---- ports and configuration ---------------------------------------------------------------


def free_port(preferred):
    """`preferred` when nothing listens there, else a port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As the daemon does: a port whose old connections linger in TIME_WAIT is free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise DemoError("no free TCP port on 127.0.0.1")


def cmd_ports(args):
    api = free_port(PREFERRED_API_PORT)
    sink = free_port(PREFERRED_SINK_PORT)
    if sink == api:
        sink = free_port(0)
    print(api, sink)


def cmd_config(args):
    """Copies demo/itinera.toml with the chosen ports and every relative path made absolute
    (paths in a configuration resolve against its own folder, and the copy lives elsewhere)."""
    source = os.path.join(DEMO_DIR, "itinera.toml")
    with open(source, encoding="utf-8") as f:
        text = f.read()
    text = text.replace(f"127.0.0.1:{PREFERRED_API_PORT}", f"127.0.0.1:{args.api_port}")
    text = text.replace(f"127.0.0.1:{PREFERRED_SINK_PORT}", f"127.0.0.1:{args.sink_port}")

    def absolute(path):
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(DEMO_DIR, path))

    def fix_path(m):
        return f'{m.group(1)}"{absolute(m.group(2))}"'

    def fix_store(m):
        return f'{m.group(1)}"sqlite:{absolute(m.group(2))}"'

    text = re.sub(r'(?m)^(\s*(?:journeys|templates|maildir|file)\s*=\s*)"([^"]*)"', fix_path, text)
    text = re.sub(r'(?m)^(\s*url\s*=\s*)"sqlite:([^"]*)"', fix_store, text)
    text = (f"# Written by scripts/demo from {source}: ports {args.api_port} (API) and "
            f"{args.sink_port} (sink), absolute paths.\n") + text
    os.makedirs(args.run_dir, exist_ok=True)
    with open(os.path.join(args.run_dir, "itinera.toml"), "w", encoding="utf-8") as f:
        f.write(text)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return True


def cmd_wait_http(args):
    deadline = time.monotonic() + args.seconds
    while True:
        if args.pid:
            if not alive(args.pid):
                raise DemoError(f"the process {args.pid} that should answer {args.url} has exited")
        try:
            status, _, _ = http("GET", args.url, timeout=2)
            if status == 200:
                return
        except DemoError:
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"{args.url} did not answer 200 within {args.seconds:g} s")
        time.sleep(0.1)


# ---- reading the Maildir -------------------------------------------------------------------


def read_mails(maildir):
    """Every message in the Maildir (new/ and cur/), oldest first, parsed."""
    mails = []
    for sub in ("new", "cur"):
        folder = os.path.join(maildir, sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            mails.append((os.path.getmtime(path), path, msg))
    mails.sort(key=lambda m: (m[0], m[1]))
    return [(path, msg) for _, path, msg in mails]


def part_text(msg, subtype):
    part = msg.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


def mail_for_message(maildir, message_id):
    """The email whose Message-ID carries the outbox message id, or None."""
    for path, msg in read_mails(maildir):
        if f"<{message_id}@" in (msg.get("Message-ID") or ""):
            return path, msg
    return None


def sent_message_id(api, customer, template, timeout):
    """Waits until the 360 timeline of `customer` shows `template` delivered; its message id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = api_json("GET", f"{api}/v1/customers/{urllib.parse.quote(customer)}")
        for line in view.get("timeline", []):
            if line.get("kind") == "sent" and line.get("template") == template \
                    and line.get("status") == "sent" and line.get("message"):
                return line["message"]
        time.sleep(0.2)
    raise DemoError(f"{customer} was not sent {template} within {timeout:g} s "
                    f"(see {api}/v1/customers/{customer})")


def delivered_mail(api, maildir, customer, template, timeout=15):
    message_id = sent_message_id(api, customer, template, timeout)
    found = mail_for_message(maildir, message_id)
    if found is None:
        raise DemoError(f"{template} to {customer} is marked sent (message {message_id}) but is "
                        f"not in {maildir}")
    return found


def links(html, kind):
    """The tracking links of one kind in an email's HTML: 'o' pixel, 'c' click, 'u' unsubscribe."""
    pattern = r'(?:src|href)="([^"]*/' + ("t/" + kind if kind in "oc" else "u") + r'/[^"]+)"'
    return [urllib.parse.unquote(u).replace("&amp;", "&") for u in re.findall(pattern, html)]


# ---- the story ------------------------------------------------------------------------------


def step(text):
    print(f"  - {text}", flush=True)


def cmd_play(args):
    api = args.api.rstrip("/")
    maildir = os.path.join(args.run_dir, "mail")

    with open(os.path.join(DEMO_DIR, "customers.jsonl"), encoding="utf-8") as f:
        customers = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(DEMO_DIR, "events.jsonl"), encoding="utf-8") as f:
        batch = [json.loads(line) for line in f if line.strip()]
    names = {c["id"]: c["attributes"]["first_name"] for c in customers}

    print("==> customers (PUT /v1/customers/{id})")
    for c in customers:
        body = {k: v for k, v in c.items() if k != "id"}
        api_json("PUT", f"{api}/v1/customers/{urllib.parse.quote(c['id'])}", body)
        consent = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in c.get("consent", {}).items())
        step(f"{c['id']} {names[c['id']]:<6} {c.get('timezone', ''):<14} phone "
             f"{'yes' if c.get('phone') else 'no ':<3}  consent: {consent}")

    print("==> events (POST /v1/events)")
    answer = api_json("POST", f"{api}/v1/events", batch, expect=(202,))
    step(f"one request with {len(batch)} test-drive forms (c-1 .. c-4): 202 {json.dumps(answer)}")
    single = {"id": "form-1005", "customer_id": "c-5", "type": "form_submitted",
              "properties": {"form": "test_drive", "model": "Skoda Elroq", "preferred_date": "Friday"}}
    answer = api_json("POST", f"{api}/v1/events", single, expect=(202,))
    step(f"c-5's form on its own: 202 {json.dumps(answer)}")
    answer = api_json("POST", f"{api}/v1/events", batch[0], expect=(202,))
    step(f"c-1's form sent again with the same id form-1001 (a client retry): "
         f"202 {json.dumps(answer)}, a repeated id has no effect")

    print("==> people reading their email (links found in the Maildir)")
    # Martin unsubscribes from his confirmation, before the offer goes out 3 s later.
    _, mail = delivered_mail(api, maildir, "c-4", "test_drive_confirmation")
    unsubscribe = links(part_text(mail, "html"), "u")
    if not unsubscribe:
        raise DemoError("c-4's confirmation has no unsubscribe link")
    status, _, _ = http("GET", unsubscribe[0])
    step(f"c-4 Martin clicks Unsubscribe in his confirmation: GET {short(unsubscribe[0])} -> {status}")

    # Jana and Lucie open the offer (their mail client loads the pixel); Jana clicks it.
    for customer, click in (("c-1", True), ("c-3", False)):
        _, mail = delivered_mail(api, maildir, customer, "test_drive_offer")
        html = part_text(mail, "html")
        pixel = links(html, "o")
        if not pixel:
            raise DemoError(f"{customer}'s offer has no open pixel")
        status, headers, _ = http("GET", pixel[0])
        step(f"{customer} {names[customer]} opens the offer: GET {short(pixel[0])} -> {status} "
             f"{headers.get('Content-Type', '')}")
        if click:
            clicks = links(html, "c")
            if not clicks:
                raise DemoError(f"{customer}'s offer has no tracked link")
            status, headers, _ = http("GET", clicks[0])
            step(f"{customer} {names[customer]} clicks \"See the full offer\": GET "
                 f"{short(clicks[0])} -> {status} Location: {headers.get('Location')}")

    # Eva buys before she even opens the offer; Jana comes for her test drive.
    delivered_mail(api, maildir, "c-5", "test_drive_offer")
    purchase = {"id": "order-5521", "customer_id": "c-5", "type": "purchase",
                "properties": {"order_id": "o-5521", "model": "Skoda Elroq", "value": 38900}}
    api_json("POST", f"{api}/v1/events", purchase, expect=(202,))
    step("c-5 Eva buys the car (POST /v1/events purchase, id order-5521): she leaves the journey")
    drive = {"id": "drive-1001", "customer_id": "c-1", "type": "test_drive_done",
             "properties": {"model": "Skoda Enyaq 85"}}
    api_json("POST", f"{api}/v1/events", drive, expect=(202,))
    step("c-1 Jana takes her test drive (POST /v1/events test_drive_done): a goal")
    step("c-2 Petr never opens his offer: after 8 s he gets a reminder and the CRM a call task")

    print(f"==> waiting for the journey to play out (GET /v1/journeys/{JOURNEY}, up to "
          f"{args.timeout:g} s)", flush=True)
    started = time.monotonic()
    while True:
        stats = api_json("GET", f"{api}/v1/journeys/{JOURNEY}")
        in_flight = stats.get("entered", 0) - stats.get("exited", 0)
        pending = sum(c.get("pending", 0) for c in stats.get("messages", {}).values())
        if stats.get("entered", 0) > 0 and in_flight == 0 and pending == 0:
            step(f"everyone is through after {time.monotonic() - started:.0f} s")
            return
        if time.monotonic() - started > args.timeout:
            step(f"still {in_flight} customer(s) in the journey and {pending} message(s) pending "
                 f"after {args.timeout:g} s; showing what happened so far")
            return
        time.sleep(0.5)


def short(url):
    """A tracking URL with its token shortened, for printing."""
    m = re.match(r"(.*/(?:t/[oc]|u)/)([A-Za-z0-9_=-]+)(.*)", url, re.S)
    if not m or len(m.group(2)) <= 16:
        return url
    return f"{m.group(1)}{m.group(2)[:10]}...{m.group(3)}"


# ---- the report ------------------------------------------------------------------------------


def heading(text):
    print(f"\n==> {text}")


def cmd_report(args):
    api = args.api.rstrip("/")
    run = args.run_dir
    maildir = os.path.join(run, "mail")

    heading(f"emails in the Maildir ({maildir}/new)")
    mails = read_mails(maildir)
    if not mails:
        print("  (none)")
    for _, msg in mails:
        sent = msg["Date"].datetime.astimezone(datetime.timezone.utc).strftime("%H:%M:%S") \
            if msg["Date"] else "        "
        print(f"  {sent}  To: {str(msg['To']):<30} Subject: {msg['Subject']}")
    # Show Jana's offer: the message id from her 360 timeline names the file.
    found = None
    try:
        found = mail_for_message(maildir, sent_message_id(api, "c-1", "test_drive_offer", 0.1))
    except DemoError:
        pass
    if found is None and mails:
        found = mails[-1]
    if found is not None:
        path, offer = found
        print(f"\n  One of them, as text ({os.path.relpath(path)}):")
        for header in ("From", "To", "Subject", "Message-ID", "List-Unsubscribe"):
            value = str(offer[header] or "")
            if header == "List-Unsubscribe":
                value = short(value.strip("<>"))
            print(f"  | {header}: {value}")
        print("  |")
        lines = [l.rstrip() for l in part_text(offer, "plain").splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        for line in lines[:14]:
            print(f"  | {short(line) if '/t/c/' in line or '/u/' in line else line}")
        if len(lines) > 14:
            print("  | ...")

    heading(f"SMS ({os.path.join(run, 'sms.log')})")
    sms_path = os.path.join(run, "sms.log")
    sms = []
    if os.path.exists(sms_path):
        with open(sms_path, encoding="utf-8") as f:
            sms = [json.loads(line) for line in f if line.strip()]
    if not sms:
        print("  (none)")
    for s in sms:
        print(f"  {s.get('at', '')}  to {s.get('to')}: {str(s.get('body', '')).strip()}")

    calls = []
    sink_path = os.path.join(run, "sink.jsonl")
    if os.path.exists(sink_path):
        with open(sink_path, encoding="utf-8") as f:
            calls = [json.loads(line) for line in f if line.strip()]

    heading("Slack alerts to the sales reps (received by the sink)")
    slack = [c for c in calls if c["path"].startswith("/hooks/")]
    if not slack:
        print("  (none)")
    for c in slack:
        text = c["body"].get("text", "") if isinstance(c["body"], dict) else str(c["body"])
        print(f"  {c['at']}  POST {c['path']}")
        for line in text.splitlines():
            print(f"  | {line}")

    heading("webhook calls to the CRM (received by the sink)")
    hooks = [c for c in calls if not c["path"].startswith("/hooks/")]
    if not hooks:
        print("  (none)")
    for c in hooks:
        body = c["body"] if isinstance(c["body"], dict) else {}
        customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
        attrs = customer.get("attributes") if isinstance(customer.get("attributes"), dict) else {}
        journey = body.get("journey") if isinstance(body.get("journey"), dict) else {}
        event = body.get("event") if isinstance(body.get("event"), dict) else {}
        name = " ".join(str(attrs[k]) for k in ("first_name", "last_name") if attrs.get(k))
        print(f"  {c['at']}  POST {c['path']}  Itinera-Signature {c['signature']}, "
              f"Idempotency-Key {c['idempotency_key']}")
        print(f"  | {body.get('type')} \"{body.get('webhook')}\" from {journey.get('id')} "
              f"v{journey.get('version')}, step {body.get('step')}")
        print(f"  | customer {customer.get('id')} {name}, {customer.get('email')}, "
              f"{customer.get('phone')}; owner {customer.get('owner')}, lead_stage "
              f"{attrs.get('lead_stage')}")
        print(f"  | last event: {event.get('type')} {json.dumps(event.get('properties', {}), ensure_ascii=False)}")

    heading(f"journey stats (GET /v1/journeys/{JOURNEY})")
    stats = api_json("GET", f"{api}/v1/journeys/{JOURNEY}")
    print(f"  version {stats.get('current_version')}, file {stats.get('file')}")
    print(f"  entered {stats.get('entered')}, exited {stats.get('exited')}, "
          f"holdout {stats.get('holdout', {}).get('holdout', 0)}")
    print(f"  {'step':<16}{'now':>5}{'entered':>9}{'left':>6}")
    for s in stats.get("steps", []):
        print(f"  {s['step']:<16}{s['now']:>5}{s['entered']:>9}{s['left']:>6}")
    for channel, counts in sorted(stats.get("messages", {}).items()):
        print(f"  messages {channel:<8} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    goals = stats.get("goals", {})
    print("  goals: " + (", ".join(f"{k} {v}" for k, v in goals.items()) or "none"))
    skipped = {k: v for k, v in stats.get("counters", {}).items() if k.startswith("skipped.")}
    if skipped:
        print("  skipped: " + ", ".join(f"{k[8:]} {v}" for k, v in skipped.items()))

    heading("where each customer ended (GET /v1/customers/{id})")
    with open(os.path.join(DEMO_DIR, "customers.jsonl"), encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f if line.strip()]
    for cid in ids:
        view = api_json("GET", f"{api}/v1/customers/{cid}")
        profile = view.get("profile", {})
        attrs = profile.get("attributes", {})
        entries = [j for j in view.get("journeys", []) if j.get("journey") == JOURNEY]
        where = "; ".join(
            f"{j.get('status')} {('(' + j['exit_reason'] + ')') if j.get('exit_reason') else 'at ' + str(j.get('step'))}"
            for j in entries) or "never entered"
        print(f"  {cid} {attrs.get('first_name', ''):<7} {where:<28} owner {profile.get('owner') or attrs.get('owner') or '-':<10} "
              f"stage {attrs.get('lead_stage', '-'):<5} email consent "
              f"{'yes' if profile.get('consent', {}).get('email') else 'no'}")

    heading("dead letters (GET /v1/messages?status=dead)")
    dead = api_json("GET", f"{api}/v1/messages?status=dead").get("messages", [])
    if not dead:
        print("  none")
    for m in dead:
        print(f"  {m['id']} {m['channel']} to {m['customer']}: {m.get('last_error')}")

    print(f"\nOpen the 360 view: curl -s {api}/v1/customers/c-1 | python3 -m json.tool")
    print(f"  (no curl? python3 -c \"import urllib.request; "
          f"print(urllib.request.urlopen('{api}/v1/customers/c-1').read().decode())\" "
          f"| python3 -m json.tool)")
    print(f"The emails are files in {maildir}/new (open one with any mail reader, or: "
          f"less {maildir}/new/*)")


def main():
    parser = argparse.ArgumentParser(description="the client side of scripts/demo")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ports")
    p = sub.add_parser("config")
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--sink-port", type=int, required=True)
    p.add_argument("--run-dir", required=True)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    p.add_argument("--pid", type=int, help="give up at once when this process exits")
    for name in ("play", "report"):
        p = sub.add_parser(name)
        p.add_argument("--api", required=True)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--timeout", type=float, default=40)
    args = parser.parse_args()
    commands = {"ports": cmd_ports, "config": cmd_config, "wait-http": cmd_wait_http,
                "play": cmd_play, "report": cmd_report}
    try:
        commands[args.command](args)
    except DemoError as e:
        sys.exit(f"demo: {e}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
