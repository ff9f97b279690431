#!/usr/bin/env python3
"""Learning accuracy benchmark: mxguard, Rspamd and SpamAssassin trained on the same rows and scored
on the same rows of the fixed split (../shared/corpus/splits/spamassassin_seed1.tsv: 4,231 train,
1,814 test), in one run on this machine.

  1. mxguard: engine/bayes/benches/split.rs — Bayes alone (its probability), the full local
     pipeline with the hand-set scores (every content scanner, lists as installed, plus the Bayes
     symbol as the gateway scores it; no DNS, no ClamAV), and the full score with learned weights
     (the gateway's own model, mxguard-weights, fitted on the train rows with Bayes judged out of
     fold; MXGUARD_BENCH_LEARNED=5): each also by 5-fold cross-validation over the train rows.
  2. Rspamd 3.4: its Bayes in a Redis started here (min_learns 200, no autolearn), trained through
     its controller (/learnspam, /learnham), the test rows checked by one normal worker (/checkv2);
     network modules off as in benches/scan.py. Bayes alone: the probability in its BAYES_SPAM /
     BAYES_HAM options (0.5 when neither); full: its score.
  3. SpamAssassin 4: its Perl API (benches/sa_bayes.pl), local tests only, Bayes learnt with
     Mail::SpamAssassin::learn, checked with `check`; Bayes alone: its _BAYES_ tag; full: its score.

For each: 1-AUC (%, ties count half), spam caught at <= 0.1 % and <= 1 % ham false positives, and
spam caught / ham false positives at each default threshold (mxguard: verdict.tag_score,
quarantine_score, reject_score; Rspamd: add header 6, reject 15; SpamAssassin: required_score 5).

Usage: benches/accuracy.py [--no-record]   Results are appended to benches/RESULTS.md.
"""

import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scan as common  # noqa: E402  (daemon helpers shared with the scan benchmark)

ROOT = common.ROOT
CORPUS = common.CORPUS
SPLIT = common.SHARED / "splits" / "spamassassin_seed1.tsv"


def rows():
    out = []
    for line in SPLIT.read_text().splitlines()[1:]:
        s, label, path = line.split("\t")[:3]
        out.append((s, label, str(CORPUS / path)))
    return out


def ranking(scored):
    """(1-AUC %, caught at 0.1 % FP, caught at 1 % FP) of [(score, is_spam)]."""
    spams = [s for s, y in scored if y]
    hams = sorted(s for s, y in scored if not y)
    import bisect
    wrong = 0.0
    for s in spams:
        lo, hi = bisect.bisect_left(hams, s), bisect.bisect_right(hams, s)
        wrong += (len(hams) - hi) + (hi - lo) / 2
    def caught(fp):
        allowed = int(len(hams) * fp)
        t = hams[len(hams) - 1 - allowed] if allowed < len(hams) else float("-inf")
        return 100.0 * sum(s > t for s in spams) / max(1, len(spams))
    return 100.0 * wrong / max(1, len(spams) * len(hams)), caught(0.001), caught(0.01)


def at(scored, t):
    spams = [s for s, y in scored if y]
    hams = [s for s, y in scored if not y]
    return 100.0 * sum(s >= t for s in spams) / max(1, len(spams)), 100.0 * sum(s >= t for s in hams) / max(1, len(hams))


# ---- mxguard -------------------------------------------------------------------------------------

def run_mxguard():
    env = dict(os.environ, MXGUARD_BENCH_LEARNED="5")
    out = subprocess.run(["cargo", "bench", "-q", "-p", "mxguard-bayes", "--bench", "split", "--", str(SPLIT), str(CORPUS)],
                         cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    objs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    full = next(o for o in objs if "full_pipeline" in o)["full_pipeline"]
    alone = next(o for o in objs if "train" in o)
    learned = next(o for o in objs if "learned_weights" in o)["learned_weights"]
    return alone, full, learned


# ---- Rspamd --------------------------------------------------------------------------------------

def start_redis(work):
    port = common.free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return p, port


def start_rspamd(work, redis_port):
    port, ctl = common.free_port(), common.free_port()
    local = work / "rspamd-local"
    (local / "local.d").mkdir(parents=True)
    (local / "override.d").mkdir()
    (local / "override.d" / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{port}";\ncount = 1;\ntask_timeout = 60s;\n')
    (local / "override.d" / "worker-controller.inc").write_text(f'bind_socket = "127.0.0.1:{ctl}";\ncount = 1;\nsecure_ip = "127.0.0.1";\n')
    (local / "override.d" / "worker-proxy.inc").write_text(f'enabled = false;\ncount = 0;\nbind_socket = "127.0.0.1:{common.free_port()}";\n')
    (local / "local.d" / "options.inc").write_text('dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 0; }\n')
    (local / "local.d" / "redis.conf").write_text(f'servers = "127.0.0.1:{redis_port}";\n')
    (local / "local.d" / "classifier-bayes.conf").write_text(
        f'backend = "redis";\nservers = "127.0.0.1:{redis_port}";\nmin_learns = 200;\nautolearn = false;\n')
    for m in common.RSPAMD_OFF:
        (local / "local.d" / f"{m}.conf").write_text("enabled = false;\n")
    p = subprocess.Popen(["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf", "--var", f"LOCAL_CONFDIR={local}",
                          "--var", f"RUNDIR={work}", "--var", f"LOGDIR={work}", "--var", f"DBDIR={work}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return p, port, ctl


def rspamd_learn(ctl, label, path):
    body = open(path, "rb").read()

    def once():
        c = http.client.HTTPConnection("127.0.0.1", ctl, timeout=60)
        c.request("POST", "/learnspam" if label == "spam" else "/learnham", body=body, headers={"Content-Length": str(len(body))})
        r = c.getresponse()
        data = r.read()
        c.close()
        # 204: skipped by its learn conditions (already classified right with confidence: its
        # own train-on-error); 208: already learnt (a duplicate message). Neither is an error.
        return {"ok": r.status in (200, 204, 208), "skipped": r.status in (204, 208), "status": r.status,
                "body": data[:200].decode("latin-1")}

    return common.retrying(once, {"ok": False})


def rspamd_bayes(r):
    """Rspamd's Bayes probability from its BAYES_SPAM / BAYES_HAM options ('97.31%')."""
    syms = r.get("symbols", {})
    for name, spam in (("BAYES_SPAM", True), ("BAYES_HAM", False)):
        s = syms.get(name)
        if s:
            try:
                p = float(s.get("options", ["100%"])[0].rstrip("%")) / 100.0
            except (ValueError, IndexError):
                p = 1.0
            return p if spam else 1.0 - p
    return 0.5


def run_rspamd(work, train, test):
    redis, rport = start_redis(work)
    proc, port, ctl = start_rspamd(work, rport)
    try:
        common.wait_rspamd(port, test[0][1], work / "rspamd.log")
        t0 = time.time()
        # feed() hands each job's second field to the function: here the (label, path) pair.
        results = common.feed([(None, row) for row in train], lambda row: rspamd_learn(ctl, *row), threads=2)
        learn_s = time.time() - t0
        failed = [r for r in results if not r.get("ok")]
        checked = common.feed(test, lambda path: common.rspamd_check(port, path), threads=4)
        full = [(float(r.get("score", 0.0)), lab == "spam") for (lab, _), r in zip(test, checked)]
        alone = [(rspamd_bayes(r), lab == "spam") for (lab, _), r in zip(test, checked)]
        return {"learn_s": learn_s, "learn_failed": len(failed), "learn_skipped": sum(1 for r in results if r.get("skipped")), "unanswered": sum(1 for r in checked if not r),
                "bayes_verdicts": sum(1 for r in checked if any(s in r.get("symbols", {}) for s in ("BAYES_SPAM", "BAYES_HAM"))),
                "full": full, "alone": alone, "first_failure": failed[0] if failed else None}
    finally:
        common.stop(proc)
        common.stop(redis)


# ---- SpamAssassin --------------------------------------------------------------------------------

def run_spamassassin(work, train, test):
    db = work / "sa"
    db.mkdir()
    lst = work / "sa-train.tsv"
    lst.write_text("".join(f"{lab}\t{p}\n" for lab, p in train))
    t0 = time.time()
    subprocess.run(["perl", str(ROOT / "benches" / "sa_bayes.pl"), "learn", str(db), str(lst)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    learn_s = time.time() - t0
    # Two checking processes (two cores), each on half of the test rows, reading the same database.
    halves = [test[0::2], test[1::2]]
    procs = []
    for i, h in enumerate(halves):
        f = work / f"sa-test-{i}.tsv"
        f.write_text("".join(f"{lab}\t{p}\n" for lab, p in h))
        procs.append(subprocess.Popen(["perl", str(ROOT / "benches" / "sa_bayes.pl"), "check", str(db), str(f)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    lines = []
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        lines.extend(l.split("\t") for l in out.splitlines() if l.count("\t") == 2)
    full = [(float(s), lab == "spam") for lab, s, _ in lines]
    alone = [(float(b) if b != "-" else 0.5, lab == "spam") for lab, _, b in lines]
    return {"learn_s": learn_s, "checked": len(lines), "full": full, "alone": alone}


# ---- report --------------------------------------------------------------------------------------

def main():
    common.unpack()
    all_rows = rows()
    train = [(lab, p) for s, lab, p in all_rows if s == "train"]
    test = [(lab, p) for s, lab, p in all_rows if s == "test"]
    with tempfile.TemporaryDirectory(prefix="mxg-accuracy-") as w:
        work = Path(w)
        os.chmod(work, 0o755)
        print("mxguard ...", file=sys.stderr)
        mx_alone, mx_full, mx_learned = run_mxguard()
        print("Rspamd ...", file=sys.stderr)
        rs = run_rspamd(work, train, test)
        print("SpamAssassin ...", file=sys.stderr)
        sa = run_spamassassin(work, train, test)
    r = {"mxguard": {"alone": mx_alone, "full": mx_full, "learned": mx_learned}, "rspamd": summary(rs, [6.0, 15.0]), "spamassassin": summary(sa, [5.0])}
    print(json.dumps(r, indent=1))
    if "--no-record" not in sys.argv:
        record(r, len(train), len(test))


def summary(x, thresholds):
    a, f = ranking(x["alone"]), ranking(x["full"])
    out = {k: v for k, v in x.items() if k not in ("full", "alone")}
    out["alone"] = {"one_minus_auc_pct": a[0], "caught_at_0_1pct_fp": a[1], "caught_at_1pct_fp": a[2]}
    out["full"] = {"one_minus_auc_pct": f[0], "caught_at_0_1pct_fp": f[1], "caught_at_1pct_fp": f[2],
                   "at": {str(t): at(x["full"], t) for t in thresholds}}
    return out


def record(r, ntrain, ntest):
    mx, rs, sa = r["mxguard"], r["rspamd"], r["spamassassin"]
    fa = mx["full"]
    lw = mx["learned"]
    lw_thr = "; ".join(f"{k} {v['spam_pct']:.1f} % spam, ham FP {v['ham_fp_pct']:.3f} %" for k, v in lw["test"]["learned_at"].items())
    def row(name, a):
        return f"| {name} | {a['one_minus_auc_pct']:.3f} | {a['caught_at_0_1pct_fp']:.1f} | {a['caught_at_1pct_fp']:.1f} |"
    mx_thr = "; ".join(f"{k.split('_')[1]} {k.split('_')[2]}: spam {v['spam_pct']:.1f} %, ham FP {v['ham_fp_pct']:.3f} %"
                       for k, v in fa.items() if k.startswith("full_"))
    rs_thr = "; ".join(f"{t}: spam {v[0]:.1f} %, ham FP {v[1]:.3f} %" for t, v in rs["full"]["at"].items())
    sa_thr = "; ".join(f"{t}: spam {v[0]:.1f} %, ham FP {v[1]:.3f} %" for t, v in sa["full"]["at"].items())
    cmd = "benches/accuracy.py " + " ".join(sys.argv[1:])
    text = f"""
## Learning accuracy against Rspamd and SpamAssassin — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}

Command: `{cmd.strip()}` ({platform.node()}, {os.cpu_count()} cores). Fixed split: {ntrain:,} train, {ntest:,} test
rows; each filter trained on the train rows only, network checks off.

| filter | 1-AUC % | spam caught at ≤ 0.1 % ham FP | at ≤ 1 % ham FP |
|---|---|---|---|
{row("mxguard Bayes alone", mx["alone"])}
{row("mxguard full local pipeline, hand-set scores", fa)}
{row("mxguard full, learned weights", lw["test"]["learned"])}
{row("Rspamd 3.4 Bayes alone", rs["alone"])}
{row("Rspamd 3.4 full", rs["full"])}
{row("SpamAssassin 4 Bayes alone", sa["alone"])}
{row("SpamAssassin 4 full", sa["full"])}

By 5-fold cross-validation over the train rows (what the learned model's spread and gate are
chosen by; chosen: spread {lw["chosen"]["sd_symbol"]} / {lw["chosen"]["sd_bayes"]}, gate {lw["chosen"]["gate"]}):

| mxguard score | CV 1-AUC % | CV caught at ≤ 0.1 % ham FP | CV at ≤ 1 % |
|---|---|---|---|
{row("Bayes alone", lw["cv"]["bayes"])}
{row("hand-set full score", lw["cv"]["hand"])}
{row("learned full score", lw["cv"]["learned"])}

At the default thresholds — mxguard, hand-set: {mx_thr}; learned: {lw_thr}. Rspamd: {rs_thr}. SpamAssassin: {sa_thr}.
Learning: mxguard {mx['alone']['learn_msgs_per_s']:,.0f} messages/s (parse + tokens + table; table alone
{mx['alone']['learn_table_only_msgs_per_s']:,.0f}/s), Rspamd {ntrain / rs['learn_s']:.0f}/s through its controller
({rs['learn_skipped']} skipped by its learn conditions, {rs['learn_failed']} refused), SpamAssassin {ntrain / sa['learn_s']:.0f}/s through its API. Rspamd gave a Bayes verdict on
{rs['bayes_verdicts']} of {ntest} test messages ({rs['unanswered']} unanswered); SpamAssassin checked {sa['checked']}.
"""
    with open(ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write(text)
    print("recorded in benches/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
