#!/usr/bin/env python3
"""The admission gate's dial: Postfix's smtp-source (100 sessions, 2 KB) against smtp-sink
directly (the raw rate of this machine) and against mxguard relaying to smtp-sink, at several
`smtp.busy_lag_us` values, in both connection patterns: one message per connection (most MX
traffic) and many per connection (`-d`). The same client for every row, so the ratios compare
like with like. eod→250 p99 is the gateway's own histogram (mxguard_eod_to_reply_seconds).

Usage: benches/admission_gate.py [--messages N] [--lags 500,2000,...] [--no-record]
"""

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import Gateway, free_port, wait_port  # noqa: E402

N = int(sys.argv[sys.argv.index("--messages") + 1]) if "--messages" in sys.argv else 20000
LAGS = [int(x) for x in sys.argv[sys.argv.index("--lags") + 1].split(",")] if "--lags" in sys.argv else [500, 2000, 5000, 20000, 0]


def sink():
    port = free_port()
    p = subprocess.Popen(["smtp-sink", "-u", "root", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def source(port, per_conn):
    args = ["smtp-source", "-s", "100", "-l", "2048", "-m", str(N), "-f", "a@sender.example", "-t", "u@example.test"]
    if per_conn:
        args.insert(1, "-d")
    t = time.monotonic()
    subprocess.run(args + [f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return N / (time.monotonic() - t)


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mxguard-gate-"))
    rows = []  # (pattern, lag, msg/s, p99 ms, held, raw msg/s)
    for per_conn in (False, True):
        pattern = "many" if per_conn else "one"
        s, sport = sink()
        before = source(sport, per_conn)
        for lag in LAGS:
            g = Gateway(tmp, sport, {"smtp.busy_lag_us": str(lag), "log.file": "", "relay.conn_idle_s": "5",
                                     "smtp.max_connections_per_ip": "1000"},
                        name=f"g{lag}-{pattern}").start()
            try:
                rate = source(g.port, per_conn)
                m = g.metrics()
                p99 = m.get('mxguard_eod_to_reply_seconds{quantile="0.99"}', 0) * 1000
                held = m.get("mxguard_smtp_body_waits_total", 0)
            finally:
                g.stop()
            after = source(sport, per_conn)
            rows.append((pattern, lag, rate, p99, held, (before + after) / 2))
            before = after
            r = rows[-1]
            print(f"{r[0]:>4} per connection  busy_lag_us={r[1]:>6}  {r[2]:7.0f} msg/s  {r[2] / r[5]:.2f}x raw ({r[5]:.0f})  "
                  f"eod->250 p99 {r[3]:6.1f} ms  held {r[4]:.0f}", flush=True)
        s.send_signal(signal.SIGTERM)
        s.wait()
    if "--no-record" not in sys.argv:
        with open(ROOT / "benches" / "RESULTS.md", "a") as f:
            f.write(f"\n## Admission gate dial — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n")
            f.write(f"Command: `benches/admission_gate.py --messages {N}`. Postfix's smtp-source, 100 sessions, 2 KB, "
                    "against smtp-sink (raw: the mean of the runs just before and after each gateway run) and against "
                    "mxguard (loopback trusted: no policy checks) relaying to the same smtp-sink; eod→250 p99 from the "
                    "gateway's histogram.\n\n")
            f.write("| messages per connection | smtp.busy_lag_us | mxguard msg/s | raw msg/s | ratio | eod→250 p99 ms | transactions held |\n|---|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[5]:.0f} | {r[2] / r[5]:.2f} | {r[3]:.1f} | {r[4]:.0f} |\n")


if __name__ == "__main__":
    main()
