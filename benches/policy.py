#!/usr/bin/env python3
"""Policy-stage benchmark, in one run on this machine:

  1. lists with 1,000,000 entries (IPs, CIDRs, names, wildcards, regexes): load time and
     lookups/s on one core, against a plain hash set of the same exact keys in the same process
     (engine/policy/benches/lists_1m.rs);
  2. the data plane of benches/smtp_throughput.py, (b) mxblast -> mxguard -> sink, with the
     policy stage off (loopback is a trusted network: the shipped default) and with every check
     that needs no DNS on: 200,000-entry IP, sender and recipient lists, HELO and envelope rules,
     bans, connection rates, the pregreet test (passed once before the run, as a returning
     client has), the country database, greylisting (the client network auto-whitelisted, as a
     known sender is), per-domain settings. Runs alternate
     (off, on, off, on, ...) and the medians are compared.

Usage: benches/policy.py [--quick] [--no-record]; results are appended to benches/RESULTS.md.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_throughput as st  # noqa: E402

QUICK = "--quick" in sys.argv


def list_bench():
    out = subprocess.run(["cargo", "bench", "-q", "-p", "mxguard-policy", "--bench", "lists_1m"], cwd=st.ROOT,
                         check=True, capture_output=True, text=True).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


def policy_state():
    """List files, a country database and a greylist snapshot for the 'on' runs."""
    d = st.BENCH / "policy"
    lists = d / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    ips = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(150_000)]
    ips += [f"172.{16 + (i >> 8) % 16}.{i & 255}.0/24" for i in range(50_000)]
    (lists / "ip-blacklist.txt").write_text("\n".join(ips) + "\n")
    (lists / "domain-blacklist.txt").write_text("".join(f"spam{i}.example\n*.bulk{i}.example\n" for i in range(100_000))
                                                + "(^[a-z]+[0-9]+\\.promo\\.example$)\n")
    (lists / "from-blacklist.txt").write_text("".join(f"user{i}@spam.example\n" for i in range(100_000)))
    (lists / "to-blacklist.txt").write_text("".join(f"trap{i}@example.test:Honeypot\n" for i in range(1000)))
    (lists / "rdns-blacklist.txt").write_text("*.dynamic.example\n")
    (lists / "excluded.txt").write_text("partner.example\n")
    (lists / "unfiltered.txt").write_text("abuse@example.test\n")
    (lists / "domain-policy.txt").write_text("* text.lists = 5.7.1 %IP% refused\nexample.test verdict.reject_score = 15\n")
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet
    w = MMDBWriter(ip_version=6, database_type="bench-country", ipv4_compatible=True)
    w.insert_network(IPSet(["127.0.0.0/8"]), {"country": {"iso_code": "ZZ"}})
    w.insert_network(IPSet(["10.0.0.0/8"]), {"country": {"iso_code": "CN"}})
    w.to_db_file(str(d / "geo.mmdb"))
    now = int(time.time())
    (d / "greylist.txt").write_text(f"mxguard-greylist 1\nc 127.0.0.0/24 5 {now + 86400} {now}\n")
    return {"policy.trusted_networks": "", "dns.enabled": "0", "lists.dir": str(lists), "country.db": str(d / "geo.mmdb"),
            "country.blacklist": "CN,RU", "greylist.enabled": "1", "greylist.file": str(d / "greylist.txt"),
            "policy.conn_rate_per_ip": "10000000", "policy.conn_rate_per_net": "10000000",
            "policy.ban_spam_count": "0"}


def pregreet_pass(port):
    """One patient connection first: the pregreet test costs a new client one wait
    (policy.pregreet_wait_ms) per policy.pregreet_ttl_s, which is not the steady state measured."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.noop()


def dataplane(on_knobs, conns, n, size=2048, reps=3):
    runs = {"off": [], "on": []}
    for rep in range(reps):
        for mode in ("off", "on"):
            sink, sport, stats = st.start_sink(f"p{mode}{conns}{rep}")
            gw, gport = st.start_gateway(sport, on_knobs if mode == "on" else None)
            try:
                if mode == "on":
                    pregreet_pass(gport)
                r = st.blast_end_to_end(gport, stats, size, conns, n, f"p{mode}{conns}x{rep}")
                r.update(st.gateway_p99_ms(gw))
            finally:
                st.stop(gw)
                st.stop(sink)
            if r["accepted"] != n:
                raise SystemExit(f"{mode}: only {r['accepted']} of {n} accepted")
            runs[mode].append(r)
            print(f"  {conns} conns {mode:>3}: {r['msgs_per_s']:7.0f} msg/s, eod->250 p99 {r['p99_ms']:.2f} ms", flush=True)
    med = {m: {k: statistics.median(x[k] for x in rs) for k in ("msgs_per_s", "p50_ms", "p99_ms")} for m, rs in runs.items()}
    return {"conns": conns, "off": med["off"], "on": med["on"], "ratio": med["on"]["msgs_per_s"] / med["off"]["msgs_per_s"]}


def main():
    subprocess.run(["cargo", "build", "--release", "--workspace", "--quiet"], cwd=st.ROOT, check=True)
    st.BENCH.mkdir(parents=True, exist_ok=True)
    lb = list_bench()
    print(f"lists: {lb['entries']} entries; load {lb['ip_load_s']:.2f} s (IP list) + {lb['domain_load_s']:.2f} s "
          f"(domain list); IP lookup {lb['ip_lookup_ns']:.0f} ns ({lb['ip_lookups_per_s'] / 1e6:.1f} M/s, "
          f"{lb['ip_ratio']:.1f}x a hash set), domain lookup {lb['domain_lookup_ns']:.0f} ns "
          f"({lb['domain_lookups_per_s'] / 1e6:.2f} M/s, {lb['domain_ratio']:.1f}x a hash set)", flush=True)
    knobs = policy_state()
    n = 3000 if QUICK else 10000
    rows = [dataplane(knobs, c, n, reps=2 if QUICK else 3) for c in (10, 100)]
    for r in rows:
        print(f"data plane {r['conns']} conns: policy on/off throughput {r['ratio']:.3f}; p99 {r['on']['p99_ms']:.2f} vs "
              f"{r['off']['p99_ms']:.2f} ms", flush=True)
    if "--no-record" in sys.argv:
        return
    cmd = "benches/policy.py" + (" --quick" if QUICK else "")
    lines = [f"\n## Policy stage — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n",
             f"Command: `{cmd}` (release build; {os.cpu_count()} cores, kernel {platform.release()}).\n",
             f"Lists of {lb['entries']:,} entries ({lb['ip_entries']:,} IPs and CIDRs; {lb['domain_entries']:,} names, "
             "wildcards and regexes), one core; reference: `HashSet` of the exact keys, same process.\n",
             "| list | load s | lookup ns | lookups/s | × hash set |", "|---|---|---|---|---|",
             f"| IP (600k addresses, 200k CIDRs) | {lb['ip_load_s']:.2f} | {lb['ip_lookup_ns']:.0f} | "
             f"{lb['ip_lookups_per_s']:,.0f} | {lb['ip_ratio']:.1f} |",
             f"| domain (150k names, 90k `*.domain`, 4k other wildcards, 1k regexes) | {lb['domain_load_s']:.2f} | {lb['domain_lookup_ns']:.0f} | "
             f"{lb['domain_lookups_per_s']:,.0f} | {lb['domain_ratio']:.1f} |",
             "\nData plane (b) of smtp_throughput.py, 2 KB messages, median of alternating runs: policy off "
             "(loopback trusted) against every non-DNS check on.\n",
             "| conns | off msg/s | on msg/s | on/off | off p99 ms | on p99 ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['conns']} | {r['off']['msgs_per_s']:.0f} | {r['on']['msgs_per_s']:.0f} | {r['ratio']:.3f} | "
                     f"{r['off']['p99_ms']:.2f} | {r['on']['p99_ms']:.2f} |")
    with open(st.ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
