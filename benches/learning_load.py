#!/usr/bin/env python3
"""Learning while the gateway carries load: does teaching the live Bayes table (`mxguard learn`
through the admin socket, the learner thread, its journal) or classifying with it slow the
SMTP data plane?

One gateway (fsync on, every local scanner but ClamAV, Bayes on with auto-learn), one mxblast sink, and
mxblast offering a fixed rate of 2 KB messages over 100 connections, three times:
  (1) an empty table (Bayes not yet past bayes.min_learned: no classification) — the reference;
  (2) the same load while `mxguard learn` teaches the 4,231 train rows of the fixed split
      (../shared/corpus/splits/spamassassin_seed1.tsv) into the running gateway;
  (3) the same load once they are learnt (every message now classified).
Prints, per phase, mxblast's eod->250 p50/p99 (the gateway's own histograms span all phases, so
they are not used), and for (2) the
learning rate under load and the lessons lost (mxguard_bayes_lessons_lost, which must stay 0).

Usage: [BAYES_FILE=/other/fs/bayes.db] benches/learning_load.py [--rate N] [--no-record]
(BAYES_FILE puts the table and its journal on another filesystem than the spool.) Results go to
benches/RESULTS.md.
"""

import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smtp_throughput as tp  # noqa: E402  (gateway, sink and mxblast helpers)
import scan as common  # noqa: E402  (corpus unpacking)

ROOT = tp.ROOT
RATE = int(sys.argv[sys.argv.index("--rate") + 1]) if "--rate" in sys.argv else 1000
SECS = 10


def metrics(gw):
    mport = int([a for a in gw.args if a.startswith("metrics.listen=")][0].rsplit(":", 1)[1])
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def blast(port, tag):
    f = tp.BENCH / f"learnload-{tag}.json"
    subprocess.run([str(tp.REL / "mxblast"), "send", "--server", f"127.0.0.1:{port}", "-c", "100", "-d", str(SECS), "-s", "2048",
                    "--per-conn", "1000", "--rate", str(RATE), "--json", str(f)], check=True, stdout=subprocess.DEVNULL)
    r = json.loads(f.read_text())
    return {"achieved": r["msgs_per_s"], "ok": r["ok"], "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"]}


def train_dirs():
    common.unpack()
    dirs = {}
    for label in ("spam", "ham"):
        d = tp.BENCH / f"learn-{label}"
        if d.exists():
            for f in d.iterdir():
                f.unlink()
        d.mkdir(parents=True, exist_ok=True)
        dirs[label] = d
    for line in (common.SHARED / "splits" / "spamassassin_seed1.tsv").read_text().splitlines()[1:]:
        s, label, path = line.split("\t")[:3]
        if s == "train":
            src = common.CORPUS / path
            (dirs[label] / src.name).symlink_to(src)
    return dirs


def main():
    tp.BENCH.mkdir(parents=True, exist_ok=True)
    dirs = train_dirs()
    n_train = sum(len(list(d.iterdir())) for d in dirs.values())
    sink, sport, _ = tp.start_sink("learnload")
    # The throughput bench's gateway has every filter off (its data-plane figure); this one needs
    # the content scan and Bayes back on. ClamAV stays off (no signatures on a bench machine), and
    # the DNS checks (no resolver).
    knobs = {"scan.enabled": "1", "bayes.enabled": "1", "auth.enabled": "1", "bayes.journal_sync_ms": "1000"}
    if os.environ.get("BAYES_FILE"):
        knobs["bayes.file"] = os.environ["BAYES_FILE"]
    gw, port = tp.start_gateway(sport, knobs)
    state = tp.BENCH / "mxguard"
    try:
        blast(port, "warm")
        reference = blast(port, "reference")
        # (2) learning into the running gateway while the same load runs.
        took = {}

        def learn():
            t0 = time.monotonic()
            for label, d in dirs.items():
                subprocess.run([str(tp.REL / "mxguard"), "learn", f"--{label}", str(d), "--set", f"state.dir={state}"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            took["s"] = time.monotonic() - t0
        t = threading.Thread(target=learn)
        t.start()
        during = blast(port, "during")
        t.join()
        m = metrics(gw)
        learnt = (m.get('mxguard_bayes_learned_messages{kind="spam"}', 0), m.get('mxguard_bayes_learned_messages{kind="ham"}', 0))
        lost = m.get("mxguard_bayes_lessons_lost", -1)
        # (3) the same load with every message classified.
        after = blast(port, "after")
        verdicts = sum(v for k, v in metrics(gw).items() if k.startswith("mxguard_bayes_verdicts_total"))
    finally:
        tp.stop(gw)
        tp.stop(sink)
    r = {"rate": RATE, "reference": reference, "during_learning": during, "after_learning": after, "train_messages": n_train,
         "learn_s": took.get("s"), "learnt": learnt, "lessons_lost": lost, "bayes_verdicts_after": verdicts}
    print(json.dumps(r, indent=1))
    if "--no-record" not in sys.argv:
        record(r)


def record(r):
    ref, dur, aft = r["reference"], r["during_learning"], r["after_learning"]
    def row(name, x):
        return f"| {name} | {x['achieved']:,.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['p99_ms'] / ref['p99_ms']:.2f}× |"
    cmd = "benches/learning_load.py " + " ".join(sys.argv[1:])
    if os.environ.get("BAYES_FILE"):
        cmd = f"BAYES_FILE={os.environ['BAYES_FILE']} {cmd}"
    text = f"""
## Learning under load — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}

Command: `{cmd.strip()}` ({platform.node()}, {os.cpu_count()} cores). mxblast offers {r['rate']:,} msgs/s of 2 KB over 100
connections for {SECS} s per phase; gateway with fsync, every local scanner but ClamAV (no signatures here), Bayes and auto-learn on; DNS checks off.

| phase | achieved msgs/s | eod→250 p50 ms (mxblast) | p99 ms | p99 vs reference |
|---|---|---|---|---|
{row("reference (empty table, no classification)", ref)}
{row("while `mxguard learn` teaches the train rows", dur)}
{row("after: every message classified", aft)}

Learning under load: {r['train_messages']:,} messages in {r['learn_s']:.1f} s ({r['train_messages'] / r['learn_s']:,.0f}/s, read, parsed and
tokenized at nice 19 by a thread the admin thread starts, applied by the learner thread); table then held
{r['learnt'][0]:.0f} spam and {r['learnt'][1]:.0f} ham; lessons lost {r['lessons_lost']:.0f}; Bayes verdicts in phase 3: {r['bayes_verdicts_after']:.0f}.
"""
    with open(ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write(text)
    print("recorded in benches/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
