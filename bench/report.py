#!/usr/bin/env python3
"""Turns scripts/bench's results (one JSON object per line) into the table of ratios.

Prints the table; with --write FILE, also writes docs/benchmarks.md: the table, how each figure
grows with the work, and the machine the run was made on.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys


def load(path):
    results = {}
    for line in open(path):
        line = line.strip()
        if line:
            d = json.loads(line)
            results[d["name"]] = d
    return results


def largest(results, prefix):
    """The result of the largest run named prefix.<n>."""
    runs = [(int(k[len(prefix) + 1:]), v) for k, v in results.items()
            if k.startswith(prefix + ".") and k[len(prefix) + 1:].isdigit()]
    return max(runs, key=lambda r: r[0]) if runs else (0, None)


def rate(v):
    if v >= 100:
        return f"{v:,.0f}/s"
    return f"{v:,.1f}/s"


def rows(r):
    """(figure, itinera text, reference text, ratio text, target text, met) per figure."""
    out = []

    def ratio_row(figure, mine, ref, target, unit_ref=None):
        ratio = mine / ref if ref else 0
        out.append((figure, rate(mine), unit_ref or rate(ref), f"{ratio:.2f}x",
                    f">= {target}x", ratio >= target))

    e, m = r.get("engine.BM_EngineTransition"), r.get("engine.BM_Reference_UnorderedMap")
    if e and m:
        ratio_row("Engine transitions/s, in memory, one core", e["per_s"], m["per_s"], 0.25)
    n, t = largest(r, "sqlite.transitions")
    refs = [r[k]["per_s"] for k in ("sqlite.reference", "sqlite.reference.after") if k in r]
    if t and refs:
        ref = sum(refs) / len(refs)
        ratio_row(f"Durable transitions/s on SQLite ({n:,} customers)", t["per_s"], ref, 20)
    if "pg.transitions" in r and "pg.reference" in r:
        ratio_row(f"Durable transitions/s on PostgreSQL ({r['pg.transitions']['customers']:,} "
                  "customers)", r["pg.transitions"]["per_s"], r["pg.reference"]["per_s"], 10)
    h = r.get("http.reference")
    if h and "http.event" in r:
        ratio_row("Events/s over HTTP, one per request, durable before 202",
                  r["http.event"]["per_s"], h["per_s"], 0.5)
    if h and "http.batch" in r:
        ratio_row("Events/s through the batch endpoint (100 per request)",
                  r["http.batch"]["per_s"] * 100, h["per_s"], 10)
    if "smtp.itinera" in r and "smtp.reference" in r:
        s = r["smtp.itinera"]
        runs = len(s.get("runs", [])) or 1
        median = f", median of {runs} alternated runs each" if runs > 1 else ""
        ratio_row(f"Emails/s over SMTP to smtp-sink ({s['message_bytes']:,}-byte messages{median})",
                  s["per_s"], r["smtp.reference"]["per_s"], 1.0)
    if "sms.itinera" in r and "sms.reference" in r:
        ratio_row("SMS calls/s to a local HTTP sink", r["sms.itinera"]["per_s"],
                  r["sms.reference"]["per_s"], 0.5)
    li, lr = r.get("latency.itinera"), r.get("latency.reference")
    if li and lr:
        limit = lr["p99_ms"] + 10
        peak = r.get("latency.peak", {}).get("action_rate", 0)
        runs = len(li.get("runs", [])) or 1
        median = f"; median of {runs} alternated runs each" if runs > 1 else ""
        out.append((f"p99 event -> first action at {li['rate']:,.0f} events/s (half the peak, "
                    f"{peak:,.0f} events/s turned into SMS{median})",
                    f"{li['p99_ms']:.1f} ms", f"{lr['p99_ms']:.1f} ms", "",
                    f"<= {limit:.1f} ms", li["p99_ms"] <= limit))
    n, c = largest(r, "campaign")
    if c:
        out.append((f"A campaign: {n:,} customers, one personalised email each (SMTP, SQLite)",
                    f"{c['seconds']:.0f} s", "", "", "<= 300 s", c["seconds"] <= 300))
        if "rss_bytes" in c:
            gib = c["rss_bytes"] / 2**30
            out.append((f"Daemon RSS with {n:,} customers waiting (peak "
                        f"{c['peak_rss_bytes'] / 2**20:,.0f} MiB)", f"{c['rss_bytes'] / 2**20:,.0f} MiB",
                        "", "", "<= 1024 MiB", gib <= 1.0))
    return out


def scaling(r):
    lines = []
    for prefix, what in (("sqlite.transitions", "SQLite durable transitions"),
                         ("campaign", "Campaign, end to end")):
        runs = sorted((int(k[len(prefix) + 1:]), v) for k, v in r.items()
                      if k.startswith(prefix + ".") and k[len(prefix) + 1:].isdigit())
        for n, v in runs:
            lines.append((what, f"{n:,}", f"{v['seconds']:.1f} s",
                          f"{v['us_per_customer']:.0f} us", rate(v["per_s"])))
    return lines


def table(header, body):
    text = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    for row in body:
        text += "| " + " | ".join(row) + " |\n"
    return text


def machine():
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    commit = run("git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD")
    return [("CPU", f"{os.cpu_count()} x {model}"), ("Memory", mem),
            ("OS", f"{run('sh', '-c', '. /etc/os-release; echo $PRETTY_NAME')}, "
                   f"kernel {platform.release()}"),
            ("Disk of the stores", run("sh", "-c", "df -h --output=source,fstype,size / | tail -1")),
            ("Itinera", f"commit {commit}, RelWithDebInfo"),
            ("Date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--write")
    args = parser.parse_args()
    r = load(args.results)
    body = [(f, i, ref, ratio, target, "yes" if ok else "**no**")
            for f, i, ref, ratio, target, ok in rows(r)]
    main_table = table(("figure", "Itinera", "reference", "ratio", "target", "met"), body)
    scale_table = table(("figure", "customers", "time", "per customer", "rate"), scaling(r))
    print(main_table)
    print(scale_table)
    if not args.write:
        return
    template = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks.md.in")).read()
    text = template.replace("@TABLE@", main_table).replace("@SCALING@", scale_table)
    text = text.replace("@MACHINE@", table(("", ""), machine()))
    seconds = int(r["run"]["seconds"]) if "run" in r else 0
    text = text.replace("@DURATION@", f"{seconds // 60} min {seconds % 60} s" if seconds else "?")
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    text = text.replace("@ANALYSIS@", open(analysis).read().strip() if os.path.exists(analysis) else "")
    text = text.replace("@RAW@", "\n".join(json.dumps(v, sort_keys=True) for v in r.values()))
    open(args.write, "w").write(text)
    print(f"wrote {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
