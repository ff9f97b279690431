#!/usr/bin/env python3
"""Ordinary senders under a flood of hostile clients: the rate they keep, against an undisturbed
run on the same machine in the same invocation (A, B, A), and the gateway's memory meanwhile.

  A: mxblast, 100 connections, one 2 KB message per connection, to mxguard on its defaults
     (smtp.max_connections 2000) relaying to mxblast sink;
  B: the same while tests/hostile.py's swarm holds the gateway: 5,000 slowloris clients (a byte
     a second, each from an address of its own, reconnecting a second after being closed), 50
     TLS handshakes that never finish, 5 clients sending 10 MB lines, 5 sending endless RCPT and
     5 endless pipelined NOOPs.

Usage: benches/hostile_clients.py [--messages N] [--no-record]
Appends a section to benches/RESULTS.md (unless --no-record).
"""

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import Gateway, Sink, blast, free_port, wait_for  # noqa: E402
from hostile import Swarm  # noqa: E402

N = int(sys.argv[sys.argv.index("--messages") + 1]) if "--messages" in sys.argv else 5000


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    return 0


def run(g, name):
    r = blast(g.port, "-c", "100", "-m", str(N), "-s", "2048", "--per-conn", "1", "--run", name, timeout=600)
    assert r["_rc"] == 0, r["_stderr"]
    return r


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mxguard-hostile-"))
    sink = Sink(tmp).start()
    tls_port = free_port()
    g = Gateway(tmp, sink.port, {"smtp.tls_listen": f"127.0.0.1:{tls_port}", "log.flush_ms": "200"}).start()
    try:
        a1 = run(g, "a1")
        mem = [rss(g.proc.pid)]
        swarm = Swarm(g.port, tls_port, duration=600, slowloris=5000, tls_stall=50, long_line=5,
                      endless_rcpt=5, endless_pipeline=5).start()
        wait_for(lambda: g.metrics()["mxguard_connections_current"] >= 2000, timeout=60, what="a full table")
        time.sleep(5)
        mem.append(rss(g.proc.pid))
        b = run(g, "b")
        mem.append(rss(g.proc.pid))
        m = g.metrics()
        swarm.stop()
        a2 = run(g, "a2")
        base = (a1["msgs_per_s"] + a2["msgs_per_s"]) / 2
        ratio = b["msgs_per_s"] / base
        row = {"A1": a1["msgs_per_s"], "B": b["msgs_per_s"], "A2": a2["msgs_per_s"], "B/A": round(ratio, 3),
               "B ok": b["ok"], "B connect refusals": b["connect_errors"],
               "evicted": m["mxguard_connections_evicted_total"],
               "refused at the limit": m['mxguard_connections_refused_total{reason="limit"}'],
               "rss MiB before/with swarm": [x >> 20 for x in mem], "swarm": swarm.stats}
        print(json.dumps(row, indent=1))
        if "--no-record" not in sys.argv:
            with open(ROOT / "benches" / "RESULTS.md", "a") as f:
                f.write(f"\n## Hostile clients — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n")
                f.write(f"Command: `benches/hostile_clients.py --messages {N}` (release build; {platform.node() and '2 cores'}, "
                        f"kernel {platform.release()}). 100 ordinary senders, one 2 KB message a connection, "
                        "undisturbed (A) and beside 5,000 slowloris + 50 stalled TLS handshakes + 5 each of "
                        "10 MB lines, endless RCPT, endless pipelining (B), gateway on its defaults.\n\n")
                f.write("| A1 msg/s | B msg/s | A2 msg/s | B/A | B accepted | B refused at connect (retried) | evicted | RSS MiB before → with swarm |\n|---|---|---|---|---|---|---|---|\n")
                f.write(f"| {a1['msgs_per_s']:.0f} | {b['msgs_per_s']:.0f} | {a2['msgs_per_s']:.0f} | {ratio:.2f} | "
                        f"{b['ok']}/{N} | {b['connect_errors']} | {m['mxguard_connections_evicted_total']:.0f} | "
                        f"{mem[0] >> 20} → {max(mem) >> 20} |\n")
    finally:
        g.stop()
        sink.stop()


if __name__ == "__main__":
    main()
