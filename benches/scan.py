#!/usr/bin/env python3
"""Content-scan benchmark: mxguard's scanners against Rspamd and SpamAssassin (spamd) on the same
messages, in one run on this machine.

  1. mxguard: engine/scan/benches/corpus.rs on one core, every local scanner on (MIME, rules,
     links/phishing, heuristics, attachments/archives, pictures; no DNS, no ClamAV), over the
     SpamAssassin ham/spam and nazario phishing corpora (../shared/corpus, unpacked into
     target/corpus); its own CPU time (getrusage) per message.
  2. Rspamd (the installed 3.4, Debian's stock rules) with one normal worker and its network
     checks off (rbl/surbl, spf, dkim, dmarc, arc, asn, fuzzy_check, url_redirector, hfilter
     disabled; DNS pointed at a closed loopback port; no Redis, so no Bayes/reputation), fed the
     same messages over HTTP (/checkv2) by eight client threads (its worker waits on its failing
     DNS queries without spending CPU; concurrency hides that wait).
  3. spamd (SpamAssassin 4, `-L`: local tests only), fed every SPAMD_STRIDE-th message of the same
     list over the spamc protocol (it is ~two orders of magnitude slower; a sample keeps the run
     short).

The filters' CPU is read from /proc (utime + stime of the daemon and all its processes) before and
after the timed pass, after a warm-up pass, so the clients' cost never counts. Phishing detection is
reported per corpus label for mxguard (PHISH_*, URL_IP_LITERAL, URL_USERINFO, URL_SHORTENER) and
Rspamd (PHISH*, symbols of its phishing module).

Usage: benches/scan.py [--quick] [--no-record]   (--quick: a tenth of the messages)
Results are appended to benches/RESULTS.md with this command line.
"""

import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "target" / "corpus"
SHARED = ROOT.parent / "shared" / "corpus"
QUICK = "--quick" in sys.argv
SPAMD_STRIDE = 10
TICK = os.sysconf("SC_CLK_TCK")


def unpack():
    for name in ("spamassassin", "nazario"):
        if (CORPUS / name / "manifest.tsv").exists():
            continue
        tars = sorted(SHARED.glob(f"{name}*.tar.gz"))
        if not tars:
            sys.exit(f"no {name} tarball in {SHARED}")
        (CORPUS).mkdir(parents=True, exist_ok=True)
        with tarfile.open(tars[0]) as t:
            t.extractall(CORPUS, filter="data")


def messages():
    """(label, path) of the spamassassin and nazario manifests, `excluded` rows left out."""
    out = []
    for name in ("spamassassin", "nazario"):
        base = CORPUS / name
        for line in (base / "manifest.tsv").read_text().splitlines()[1:]:
            f = line.split("\t")
            if len(f) < 2 or f[0] == "excluded":
                continue
            out.append((f[0], str(base / f[1])))
    if QUICK:
        out = out[::10]
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tree_cpu(root_pid):
    """CPU seconds (user + system) of a process and all its descendants alive now."""
    parent, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        parent[int(d)] = int(f[1])
        cpu[int(d)] = (int(f[11]) + int(f[12])) / TICK
    total, todo = 0.0, [root_pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return total


def feed(jobs, one, threads=2):
    """Runs one(path) over the jobs on `threads` client threads; returns the answers in order."""
    answers = [None] * len(jobs)
    lock = threading.Lock()
    it = iter(range(len(jobs)))

    def worker():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            answers[i] = one(jobs[i][1])

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return answers


# ---- mxguard -------------------------------------------------------------------------------------

def run_mxguard(msgs, work):
    lst = work / "list.tsv"
    lst.write_text("".join(f"{label}\t{path}\n" for label, path in msgs))
    out = subprocess.run(["cargo", "bench", "-q", "-p", "mxguard-scan", "--bench", "corpus", "--", str(lst), "--passes", "3"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


# ---- Rspamd --------------------------------------------------------------------------------------

RSPAMD_OFF = ["rbl", "surbl", "spf", "dkim", "dmarc", "arc", "asn", "fuzzy_check", "url_redirector", "hfilter",
              "rspamd_update", "greylist", "ratelimit", "neural", "reputation", "replies", "history_redis"]


def start_rspamd(work):
    port = free_port()
    local = work / "rspamd-local"
    (local / "local.d").mkdir(parents=True)
    (local / "override.d").mkdir()
    (local / "override.d" / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{port}";\ncount = 1;\ntask_timeout = 60s;\n')
    for w in ("controller", "proxy"):
        (local / "override.d" / f"worker-{w}.inc").write_text(f'enabled = false;\ncount = 0;\nbind_socket = "127.0.0.1:{free_port()}";\n')
    (local / "local.d" / "options.inc").write_text('dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 0; }\n')
    for m in RSPAMD_OFF:
        (local / "local.d" / f"{m}.conf").write_text("enabled = false;\n")
    p = subprocess.Popen(["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf", "--var", f"LOCAL_CONFDIR={local}",
                          "--var", f"RUNDIR={work}", "--var", f"LOGDIR={work}", "--var", f"DBDIR={work}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return p, port


def retrying(once, empty):
    """once() up to three times while it fails (a daemon still starting, a connection reset)."""
    for attempt in range(3):
        try:
            r = once()
            if r:
                return r
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.2 * (attempt + 1))
    return empty


def rspamd_check(port, path):
    body = open(path, "rb").read()

    def once():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/checkv2", body=body, headers={"Content-Length": str(len(body))})
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data) if r.status == 200 else {}

    return retrying(once, {})


def wait_rspamd(port, sample, log, deadline_s=300):
    """Until the worker answers and has loaded the hyperscan database its hs_helper compiles after
    start-up (until then it matches with PCRE, slower: timing then would wrong Rspamd)."""
    t0 = time.time()
    while time.time() - t0 < deadline_s:
        text = log.read_text(errors="replace") if log.exists() else ""
        ready = any("(normal)" in l and "full hyperscan database" in l and "has been loaded" in l for l in text.splitlines())
        if ready and rspamd_check(port, sample).get("symbols"):
            return time.time() - t0
        time.sleep(1)
    sys.exit("rspamd did not come up (or never loaded its hyperscan database)")


def rspamd_phish(r):
    """Rspamd's phishing module (PHISHING, PHISHED_*) and its IP-literal URL symbol, the
    counterparts of the symbols counted for mxguard."""
    return any(s.startswith("PHISH") or s == "HTTP_TO_IP" for s in r.get("symbols", {}))


# ---- spamd ---------------------------------------------------------------------------------------

def start_spamd(work):
    port = free_port()
    p = subprocess.Popen(["spamd", "-L", "-x", "-u", "nobody", "-i", "127.0.0.1", "-A", "127.0.0.1", "-p", str(port),
                          "--min-children=1", "--max-children=1", "--min-spare=1", "--max-spare=1",
                          "-s", str(work / "spamd.log"), "-r", str(work / "spamd.pid")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return p, port


def spamd_check(port, path):
    body = open(path, "rb").read()

    def once():
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(body) + body)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode("latin-1") if b"Spam:" in data else ""

    return retrying(once, "")


def wait_spamd(port, sample, deadline_s=120):
    t0 = time.time()
    while time.time() - t0 < deadline_s:
        if spamd_check(port, sample):
            return time.time() - t0
        time.sleep(1)
    sys.exit("spamd did not come up")


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def timed(proc, msgs, check, warm, threads):
    """Warm-up pass over `warm` messages, then the timed pass over all; the daemon's CPU only."""
    feed(warm, check, threads)
    c0 = tree_cpu(proc.pid)
    w0 = time.time()
    answers = feed(msgs, check, threads)
    wall = time.time() - w0
    cpu = tree_cpu(proc.pid) - c0
    return answers, cpu, wall


def main():
    for tool in ("rspamd", "spamd"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install rspamd spamassassin)")
    unpack()
    msgs = messages()
    work = Path(tempfile.mkdtemp(prefix="mxguard-scanbench-"))
    results = {"messages": len(msgs)}
    print(f"{len(msgs)} messages", flush=True)

    mx = run_mxguard(msgs, work)
    results["mxguard"] = mx
    print(f"mxguard: {mx['msgs_per_cpu_s']:.0f} msgs/CPU-s, p99 {mx['p99_ms']:.2f} ms, hyperscan {mx['hs_gb_per_cpu_s']:.2f} GB/s", flush=True)

    p, port = start_rspamd(work)
    try:
        up = wait_rspamd(port, msgs[0][1], work / "rspamd.log")
        answers, cpu, wall = timed(p, msgs, lambda path: rspamd_check(port, path), msgs[:200], threads=8)
    finally:
        stop(p)
    failed = sum(1 for a in answers if not a.get("symbols"))
    labels = {}
    for (label, _), a in zip(msgs, answers):
        e = labels.setdefault(label, {"messages": 0, "phish": 0, "spam_action": 0})
        e["messages"] += 1
        e["phish"] += rspamd_phish(a)
        e["spam_action"] += a.get("action", "no action") in ("reject", "add header", "rewrite subject")
    results["rspamd"] = {"cpu_s": cpu, "wall_s": wall, "startup_s": up, "failed": failed, "labels": labels,
                         "msgs_per_cpu_s": len(msgs) / max(cpu, 1e-9)}
    print(f"rspamd: {len(msgs) / max(cpu, 1e-9):.0f} msgs/CPU-s ({cpu:.1f} CPU-s, {failed} unanswered)", flush=True)

    sample = msgs[::SPAMD_STRIDE]
    p, port = start_spamd(work)
    try:
        up = wait_spamd(port, msgs[0][1])
        answers, cpu, wall = timed(p, sample, lambda path: spamd_check(port, path), sample[:10], threads=2)
    finally:
        stop(p)
    failed = sum(1 for a in answers if not a)
    results["spamd"] = {"messages": len(sample), "cpu_s": cpu, "wall_s": wall, "startup_s": up, "failed": failed,
                        "msgs_per_cpu_s": len(sample) / max(cpu, 1e-9)}
    print(f"spamd: {len(sample) / max(cpu, 1e-9):.1f} msgs/CPU-s ({cpu:.1f} CPU-s over {len(sample)}, {failed} unanswered)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    if "--no-record" not in sys.argv:
        record(results)


def record(r):
    mx, rs, sa = r["mxguard"], r["rspamd"], r["spamd"]
    ms = lambda x: 1000.0 / x["msgs_per_cpu_s"]  # noqa: E731
    lab = mx["labels"]
    rlab = rs["labels"]
    pct = lambda a, b: f"{a} / {b} = {100.0 * a / max(b, 1):.2f} %"  # noqa: E731
    cmd = "benches/scan.py" + (" --quick" if QUICK else "")
    text = f"""
## Content scan against Rspamd and spamd — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}

Command: `{cmd}` ({platform.node()}, {os.cpu_count()} cores). {r['messages']:,} messages
(SpamAssassin ham/spam + nazario phish, `excluded` rows left out), {mx['bytes'] / 1e6:.1f} MB. Network
checks off in all three; CPU of each filter's own processes (mxguard: the scanning thread).

| filter | messages timed | CPU s | messages per CPU-second | ms CPU per message | mxguard is |
|---|---|---|---|---|---|
| mxguard (one core) | {r['messages'] * mx['passes_timed']:,} | {mx['cpu_s']:.2f} | {mx['msgs_per_cpu_s']:,.0f} | {ms(mx):.3f} | — |
| Rspamd 3.4 (one worker) | {r['messages']:,} | {rs['cpu_s']:.2f} | {rs['msgs_per_cpu_s']:,.0f} | {ms(rs):.3f} | {mx['msgs_per_cpu_s'] / rs['msgs_per_cpu_s']:.1f}× |
| spamd 4 (`-L`, every {SPAMD_STRIDE}th message) | {sa['messages']:,} | {sa['cpu_s']:.2f} | {sa['msgs_per_cpu_s']:,.1f} | {ms(sa):.1f} | {mx['msgs_per_cpu_s'] / sa['msgs_per_cpu_s']:.0f}× |

mxguard: {mx['mb_per_cpu_s']:.1f} MB per CPU-second; scan time p50 / p99 / max {mx['p50_ms']:.3f} / {mx['p99_ms']:.2f} / {mx['max_ms']:.1f} ms;
hyperscan with {mx['hs_keywords']:,} caseless keywords over the decoded text ({mx['hs_bytes'] / 1e6:.1f} MB):
{mx['hs_gb_per_cpu_s']:.2f} GB per CPU-second (aho-corasick's DFA, same keywords and text, same process:
{mx.get('ac_gb_per_cpu_s', 0):.2f} GB/s); the same database with half the keywords: {mx.get('hs_half_gb_per_cpu_s', 0):.2f} GB/s;
{mx.get('hs_phrases', 0):,} words and word pairs of this corpus's spam that no ham contains (an
administrator's kind of list): {mx.get('hs_phrase_gb_per_cpu_s', 0):.2f} GB/s. Unanswered: Rspamd {rs['failed']}, spamd {sa['failed']}.

| phishing symbol | mxguard | Rspamd |
|---|---|---|
| nazario phish | {pct(lab.get('phish', {}).get('phish', 0), lab.get('phish', {}).get('messages', 0))} | {pct(rlab.get('phish', {}).get('phish', 0), rlab.get('phish', {}).get('messages', 0))} |
| SpamAssassin ham | {pct(lab.get('ham', {}).get('phish', 0), lab.get('ham', {}).get('messages', 0))} | {pct(rlab.get('ham', {}).get('phish', 0), rlab.get('ham', {}).get('messages', 0))} |
| SpamAssassin spam | {pct(lab.get('spam', {}).get('phish', 0), lab.get('spam', {}).get('messages', 0))} | {pct(rlab.get('spam', {}).get('phish', 0), rlab.get('spam', {}).get('messages', 0))} |
"""
    with open(ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write(text)
    print(f"recorded in benches/RESULTS.md")


if __name__ == "__main__":
    main()
