#!/usr/bin/env python3
"""Data-plane benchmark: mxguard against Postfix on this machine, in one run, on loopback.

  (a) mxblast -> mxblast sink directly: the raw limit of SMTP on this machine, with the same
      client and connection pattern as (b) and (c) (1,000 messages a connection)
  (b) mxblast -> mxguard (fsync on, no filtering) -> mxblast sink: end to end
  (c) mxblast -> a Postfix relay started here (queue under target/) -> mxblast sink: end to end
  (a') Postfix smtp-source -d -> smtp-sink: the raw limit with another client (also many
      messages a connection), as a cross-check of (a)

for 2 KB and 20 KB messages at 10 and 100 connections, and prints (b)/(a) and (b)/(c). End to
end means from the first connection to the last message counted at the sink. Also measures the
end-of-data -> 250 latency of (b) (mxblast's histogram) and mxguard's resident memory while it
holds 10,000 idle connections.

Usage: benches/smtp_throughput.py [--quick] [--no-record]
Results are appended to benches/RESULTS.md with the command line (unless --no-record).
"""

import atexit
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"
BENCH = ROOT / "target" / "bench"
QUICK = "--quick" in sys.argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


# Every process this script starts, stopped at exit whatever path the script takes (a failed start
# used to leave a sink running, and the next run could not clear target/bench).
STARTED = []


def stop_all():
    for p in STARTED:
        stop(p)


atexit.register(stop_all)


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sink_count(stats_file, run):
    try:
        return json.loads(Path(stats_file).read_text())["unique_by_run"].get(run, 0)
    except (OSError, ValueError, KeyError):
        return 0


def start_sink(tag):
    port = free_port()
    stats = BENCH / f"sink-{tag}.json"
    p = subprocess.Popen([str(REL / "mxblast"), "sink", "--listen", f"127.0.0.1:{port}", "--stats", str(stats),
                          "--cores", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(p)
    wait_port(port)
    return p, port, stats


def run_a(size, conns, n):
    port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "root", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        t0 = time.monotonic()
        # -d: many messages a connection, as mxblast sends them in (a), (b) and (c).
        subprocess.run(["smtp-source", "-d", "-s", str(conns), "-m", str(n), "-l", str(size), "-f", "a@sender.example",
                        "-t", "u@example.test", f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
        dt = time.monotonic() - t0
    finally:
        stop(sink)
    return {"msgs_per_s": n / dt}


def gateway_p99_ms(gw):
    """p99s from mxguard's own histograms: eod->250 as the gateway sees it, the whole spool
    commit, and the device flush inside it (the floor no scheduling change can go below)."""
    import urllib.request
    mport = int([a for a in gw.args if a.startswith("metrics.listen=")][0].rsplit(":", 1)[1])
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()

    def q(name):
        line = [l for l in text.splitlines() if l.startswith(name + '{quantile="0.99"}')][0]
        return float(line.split()[1]) * 1000
    return {"server_eod_p99_ms": q("mxguard_eod_to_reply_seconds"), "commit_p99_ms": q("mxguard_spool_commit_seconds"),
            "sync_p99_ms": q("mxguard_spool_sync_seconds")}


def blast_end_to_end(server_port, stats, size, conns, n, run):
    out = BENCH / f"blast-{run}.json"
    t0 = time.monotonic()
    subprocess.run([str(REL / "mxblast"), "send", "--server", f"127.0.0.1:{server_port}", "-c", str(conns), "-m", str(n),
                    "-s", str(size), "--run", run, "--json", str(out), "--per-conn", "1000"], check=True,
                   stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())
    end = time.time() + 600
    while sink_count(stats, run) < r["ok"] and time.time() < end:
        time.sleep(0.01)
    dt = time.monotonic() - t0
    got = sink_count(stats, run)
    return {"msgs_per_s": got / dt, "accepted": r["ok"], "arrived": got, "accept_msgs_per_s": r["msgs_per_s"],
            "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"], "p999_ms": r["latency_ms"]["p999"]}


def start_gateway(downstream, extra=None):
    state = BENCH / "mxguard"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    port, mport = free_port(), free_port()
    knobs = {"state.dir": state, "smtp.listen": f"127.0.0.1:{port}", "metrics.listen": f"127.0.0.1:{mport}",
             "relay.default_route": f"127.0.0.1:{downstream}", "log.stderr": "0", "spool.fsync": "1",
             "smtp.max_connections": "20000", "smtp.max_connections_per_ip": "20000",
             # The data plane alone, as the issue defines (b): no filtering. Every filter that is
             # on by default is turned off here (content scan, Bayes, ClamAV, DKIM/DMARC, and the
             # DNS checks, which would also ask a resolver this machine does not have).
             "scan.enabled": "0", "bayes.enabled": "0", "av.enabled": "0", "auth.enabled": "0", "dns.enabled": "0"}
    knobs.update(extra or {})
    args = [str(REL / "mxguard"), "run"]
    for k, v in knobs.items():
        args += ["--set", f"{k}={v}"]
    # Its stderr is kept (log.stderr=0 leaves only start-up errors there): a gateway that does not
    # open its port says why.
    with open(BENCH / "mxguard-stderr.log", "ab") as err:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    STARTED.append(p)
    p.args = args
    wait_port(port)
    return p, port


def run_b(size, conns, n, run, extra=None):
    """(b): mxblast -> a fresh mxguard (knobs `extra` on top of the bench's) -> a fresh sink, with
    the gateway's own latency figures."""
    sink, sport, stats = start_sink(run)
    gw, gport = start_gateway(sport, extra)
    try:
        b = blast_end_to_end(gport, stats, size, conns, n, run)
        b.update(gateway_p99_ms(gw))
    finally:
        stop(gw)
        stop(sink)
    return b


def start_postfix(downstream):
    d = BENCH / "postfix"
    if d.exists():
        subprocess.run(["postfix", "-c", str(d / "conf"), "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
    (d / "conf").mkdir(parents=True)
    (d / "queue").mkdir()
    (d / "data").mkdir()
    shutil.chown(d / "data", "postfix")
    port = free_port()
    (d / "conf" / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = /dev/stdout
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.example.test
mydestination =
relay_domains = example.test
relayhost = [127.0.0.1]:{downstream}
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_destination_concurrency_limit = 20
""")
    master = Path("/etc/postfix/master.cf").read_text().splitlines()
    master = [f"127.0.0.1:{port} inet n - n - - smtpd" if l.startswith("smtp ") and " inet " in l else l
              for l in master]

    def no_chroot(line):
        # Services run outside a chroot, so the private instance needs no copies of /etc files.
        f = line.split()
        if line[:1].isalnum() and len(f) >= 8 and f[4] == "y":
            f[4] = "n"
            return " ".join(f)
        return line
    master = [no_chroot(l) for l in master]
    (d / "conf" / "master.cf").write_text("\n".join(master) + "\n")
    subprocess.run(["postfix", "-c", str(d / "conf"), "check"], capture_output=True)
    p = subprocess.Popen(["postfix", "-c", str(d / "conf"), "start-fg"], stdout=open(d / "maillog", "w"),
                         stderr=subprocess.STDOUT)
    wait_port(port)
    return p, port, d


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fixed_load(rates=(1000, 3000), conns=100, size=2048, secs=8):
    """Open-loop latency: mxblast offers a fixed rate over `conns` connections."""
    out = []
    for rate in rates:
        sink, sport, _ = start_sink(f"rate{rate}")
        gw, port = start_gateway(sport)
        try:
            f = BENCH / f"rate-{rate}.json"
            subprocess.run([str(REL / "mxblast"), "send", "--server", f"127.0.0.1:{port}", "-c", str(conns), "-d",
                            str(secs), "-s", str(size), "--per-conn", "1000", "--rate", str(rate), "--json", str(f)],
                           check=True, stdout=subprocess.DEVNULL)
            r = json.loads(f.read_text())
            out.append({"rate": rate, "achieved": r["msgs_per_s"], "p50_ms": r["latency_ms"]["p50"],
                        "p99_ms": r["latency_ms"]["p99"], "p999_ms": r["latency_ms"]["p999"], **gateway_p99_ms(gw)})
        finally:
            stop(gw)
            stop(sink)
    return out


def idle_connections(n=10000, hold=8):
    sink, sport, _ = start_sink("idle")
    gw, port = start_gateway(sport, {"smtp.read_timeout_s": "120"})
    try:
        base = rss_kib(gw.pid)
        b = subprocess.Popen([str(REL / "mxblast"), "send", "--server", f"127.0.0.1:{port}", "--idle", str(n),
                              "--hold", str(hold)], stdout=subprocess.PIPE, text=True)
        peak = base
        while b.poll() is None:
            peak = max(peak, rss_kib(gw.pid))
            time.sleep(0.2)
        out = b.stdout.read().strip()
        return {"connections": n, "rss_idle_mib": base / 1024, "rss_peak_mib": peak / 1024, "blast": out}
    finally:
        stop(gw)
        stop(sink)


def main():
    subprocess.run(["cargo", "build", "--release", "--workspace", "--quiet"], cwd=ROOT, check=True)
    shutil.rmtree(BENCH, ignore_errors=True)
    BENCH.mkdir(parents=True)
    sizes = [2048, 20480]
    conns_list = [10, 100]
    n_for = {2048: 20000, 20480: 10000}
    n_pf = 3000
    if QUICK:
        n_for = {2048: 3000, 20480: 2000}
        n_pf = 500
    rows = []
    for size in sizes:
        for conns in conns_list:
            n = n_for[size]
            sink, sport, stats = start_sink(f"a{size}{conns}")
            try:
                a = blast_end_to_end(sport, stats, size, conns, n, f"a{size}x{conns}")
            finally:
                stop(sink)
            a_ss = run_a(size, conns, n)
            b = run_b(size, conns, n, f"b{size}x{conns}")
            sink, sport, stats = start_sink(f"c{size}{conns}")
            pf, pport, pdir = start_postfix(sport)
            try:
                c = blast_end_to_end(pport, stats, size, conns, n_pf, f"c{size}x{conns}")
            finally:
                subprocess.run(["postfix", "-c", str(pdir / "conf"), "stop"], capture_output=True)
                stop(pf)
                stop(sink)
            row = {"size": size, "conns": conns, "a": a, "a_smtp_source": a_ss, "b": b, "c": c,
                   "b_over_a": b["msgs_per_s"] / a["msgs_per_s"], "b_over_c": b["msgs_per_s"] / c["msgs_per_s"]}
            rows.append(row)
            print(f"{size:>6} B {conns:>4} conns: (a) {a['msgs_per_s']:8.0f}  (a') {a_ss['msgs_per_s']:8.0f}  (b) {b['msgs_per_s']:8.0f}  "
                  f"(c) {c['msgs_per_s']:7.0f} msg/s   (b)/(a) {row['b_over_a']:.2f}  (b)/(c) {row['b_over_c']:.1f}  "
                  f"(b) eod->250 p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} ms (gateway's own p99 {b['server_eod_p99_ms']:.2f}, "
                  f"device flush p99 {b['sync_p99_ms']:.2f})", flush=True)
    # The admission gate's dial (smtpd/admission.rs): (b) at 100 connections again with the gate
    # off and with a tighter lag threshold (1 ms) than the default (10 ms), to show what each end of it costs.
    dial = []
    for target in ("0", "1000"):
        for size in sizes:
            n = n_for[size]
            b = run_b(size, 100, n, f"d{target}x{size}", {"smtp.busy_lag_us": target})
            dial.append({"target": target, "size": size, "b": b})
            print(f"smtp.busy_lag_us={target}: {size:>6} B 100 conns (b) {b['msgs_per_s']:8.0f} msg/s, eod->250 p50 "
                  f"{b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} ms (gateway's own p99 {b['server_eod_p99_ms']:.2f})", flush=True)
    fixed = fixed_load(secs=3 if QUICK else 8)
    for f in fixed:
        print(f"fixed load {f['rate']} msg/s over 100 conns (2 KB): eod->250 p50 {f['p50_ms']:.2f} p99 {f['p99_ms']:.2f} "
              f"p99.9 {f['p999_ms']:.2f} ms; spool commit p99 {f['commit_p99_ms']:.2f} ms, device flush p99 "
              f"{f['sync_p99_ms']:.2f} ms", flush=True)
    idle = idle_connections(2000 if QUICK else 10000)
    print(f"idle: {idle['blast']}; mxguard RSS {idle['rss_idle_mib']:.0f} MiB idle, "
          f"{idle['rss_peak_mib']:.0f} MiB peak with {idle['connections']} connections", flush=True)
    (BENCH / "smtp_throughput.json").write_text(json.dumps({"rows": rows, "dial": dial, "fixed": fixed, "idle": idle}, indent=1))
    if "--no-record" in sys.argv:
        return
    cmd = "benches/smtp_throughput.py" + (" --quick" if QUICK else "")
    lines = [f"\n## SMTP data plane — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n",
             f"Command: `{cmd}` (release build; {os.cpu_count()} cores, kernel {platform.release()}).",
             "End to end: first connection to last message at the sink, 1,000 messages a connection. (a) mxblast → mxblast sink; "
             "(a') smtp-source -d → smtp-sink (another client, as a cross-check of (a)); "
             "(b) mxblast → mxguard (fsync on, filters off) → mxblast sink; (c) mxblast → Postfix relay → mxblast sink.\n",
             "| size | conns | (a) msg/s | (a') msg/s | (b) msg/s | (c) msg/s | (b)/(a) | (b)/(c) | (b) eod→250 p50 ms | p99 ms | p99.9 ms "
             "| gateway's own p99 ms | device flush p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['conns']} | {r['a']['msgs_per_s']:.0f} | {r['a_smtp_source']['msgs_per_s']:.0f} | {r['b']['msgs_per_s']:.0f} | "
                     f"{r['c']['msgs_per_s']:.0f} | {r['b_over_a']:.2f} | {r['b_over_c']:.1f} | {r['b']['p50_ms']:.2f} | "
                     f"{r['b']['p99_ms']:.2f} | {r['b']['p999_ms']:.2f} | {r['b']['server_eod_p99_ms']:.2f} | "
                     f"{r['b']['sync_p99_ms']:.2f} |")
    lines.append("\nThe admission gate's dial: (b) at 100 connections with `smtp.busy_lag_us` off (0) and tighter "
                 "than the default 10000 (1000); the rows above ran at the default.\n")
    lines.append("| smtp.busy_lag_us | size | (b) msg/s | eod→250 p50 ms | p99 ms | p99.9 ms | gateway's own p99 ms |")
    lines.append("|---|---|---|---|---|---|---|")
    for d in dial:
        b = d["b"]
        lines.append(f"| {d['target']} | {d['size']} | {b['msgs_per_s']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | "
                     f"{b['p999_ms']:.2f} | {b['server_eod_p99_ms']:.2f} |")
    lines.append("\nOpen-loop latency of (b): mxblast offers a fixed rate over 100 connections, 2 KB messages.\n")
    lines.append("| offered msg/s | achieved | eod→250 p50 ms | p99 ms | p99.9 ms | spool commit p99 ms | device flush p99 ms |")
    lines.append("|---|---|---|---|---|---|---|")
    for f in fixed:
        lines.append(f"| {f['rate']} | {f['achieved']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['p999_ms']:.2f} | "
                     f"{f['commit_p99_ms']:.2f} | {f['sync_p99_ms']:.2f} |")
    lines.append(f"\nIdle connections: {idle['blast']}; mxguard RSS {idle['rss_idle_mib']:.0f} MiB before, "
                 f"{idle['rss_peak_mib']:.0f} MiB peak while holding {idle['connections']}.\n")
    with open(ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
