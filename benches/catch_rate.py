#!/usr/bin/env python3
"""Catch rate through the gateway: every spam and ham message of SpamAssassin's test data
(../shared/corpus/sa_testdata, unpacked into target/corpus) sent over SMTP (smtplib) to the real
release binary on its embedded defaults, DNS checks off (no network here), ClamAV off (no official
signatures are reachable here), delivering to `mxblast sink`. The action each message got is read
from the SMTP reply (5xx: rejected, 4xx: deferred) and, when accepted, from the gateway's
`accepted` log event (deliver, tag, quarantine).

Usage: benches/catch_rate.py [--no-record]   (needs `cargo build --release` first)
Results are appended to benches/RESULTS.md with this command line.
"""

import collections
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import Gateway, Sink, send_message, wait_for  # noqa: E402

CORPUS = ROOT / "target" / "corpus" / "sa_testdata"
SHARED = ROOT.parent / "shared" / "corpus" / "sa_testdata.tar.gz"


def messages():
    if not (CORPUS / "manifest.tsv").exists():
        CORPUS.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED) as t:
            t.extractall(CORPUS.parent, filter="data")
    out = []
    for line in (CORPUS / "manifest.tsv").read_text().splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 2 and f[0] in ("spam", "ham"):
            out.append((f[0], CORPUS / f[1]))
    return out


def crlf(raw):
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(lines)


def main():
    msgs = messages()
    tmp = Path(tempfile.mkdtemp(prefix="mxguard-catch-"))
    sink = Sink(tmp).start()
    g = Gateway(tmp, sink.port, {"dns.enabled": "0", "policy.trusted_networks": "", "policy.pregreet_wait_ms": "0",
                                 "policy.ban_spam_count": "0", "smtp.max_message_bytes": str(100 << 20)})
    g.start()
    counts = collections.defaultdict(collections.Counter)
    symbols = collections.defaultdict(collections.Counter)
    try:
        for label, path in msgs:
            code, text = send_message(g.port, crlf(path.read_bytes()), "sender@client.example", src="127.0.0.90")
            text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
            if code >= 500:
                counts[label]["reject"] += 1
            elif code >= 400:
                counts[label]["defer"] += 1
            else:
                qid = text.rsplit(" ", 1)[-1]
                ev = wait_for(lambda: next((e for e in g.events("accepted") if e.get("qid") == qid), None),
                              timeout=10, what=f"accepted event of {qid}")
                counts[label][ev.get("action", "?")] += 1
                for s in filter(None, (x.strip().split("(")[0] for x in ev.get("symbols", "").split(","))):
                    symbols[label][s] += 1
        for e in g.events("message_rejected"):
            for s in filter(None, (x.strip().split("(")[0] for x in e.get("symbols", "").split(","))):
                symbols["rejected"][s] += 1
    finally:
        g.stop()
        sink.stop()
    result = {"counts": {k: dict(v) for k, v in counts.items()}, "symbols": {k: dict(v.most_common(12)) for k, v in symbols.items()}}
    print(json.dumps(result, indent=1))
    if "--no-record" not in sys.argv:
        record(result)


def record(r):
    c = r["counts"]

    def row(label):
        v = c.get(label, {})
        n = sum(v.values())
        caught = v.get("reject", 0) + v.get("quarantine", 0)
        return (f"| {label} | {n} | {v.get('reject', 0)} | {v.get('quarantine', 0)} | {v.get('tag', 0)} | "
                f"{v.get('deliver', 0)} | {v.get('defer', 0)} | {caught} / {n} = {100.0 * caught / max(n, 1):.1f} % |")

    top = ", ".join(f"{k} {v}" for k, v in list(r["symbols"].get("rejected", {}).items())[:8])
    text = f"""
## Catch rate through the gateway: SpamAssassin test data — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}

Command: `benches/catch_rate.py` (release binary, embedded defaults; DNS and ClamAV off: no network
and no official signatures here). Every message over SMTP, the action from the reply and the log.

| label | messages | rejected | quarantined | tagged | delivered | deferred | caught (rejected + quarantined) |
|---|---|---|---|---|---|---|---|
{row('spam')}
{row('ham')}

Most frequent symbols of the rejected messages: {top}.
"""
    with open(ROOT / "benches" / "RESULTS.md", "a") as f:
        f.write(text)
    print("recorded in benches/RESULTS.md")


if __name__ == "__main__":
    main()
