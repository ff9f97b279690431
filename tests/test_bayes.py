"""Bayes end to end: `mxguard learn` offline into the table file and live through the running
gateway's admin socket, classification of mail sent over SMTP (BAYES_SPAM / BAYES_HAM in the
verdict), the kick-in rule, and the table surviving a restart and a `kill -9` (the journal
keeps what the last snapshot lacks; at most `bayes.journal_sync_ms` of learning lost). Messages come from the SpamAssassin corpus
(../shared/corpus), train rows of the fixed split for learning, test rows for sending."""

import os
import pty
import signal
import smtplib
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import MXGUARD, send_message, wait_for
from test_content import accepted_symbols, knobs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{(set, label): [paths]} of the fixed split, unpacked once for the module."""
    root = tmp_path_factory.mktemp("corpus")
    with tarfile.open(SHARED / "spamassassin.tar.gz") as t:
        t.extractall(root, filter="data")
    rows = {}
    for line in (SHARED / "splits" / "spamassassin_seed1.tsv").read_text().splitlines()[1:]:
        s, label, path = line.split("\t")[:3]
        rows.setdefault((s, label), []).append(root / path)
    return rows


def learn(state, kind, paths, *extra):
    d = state.parent / f"learn-{kind}-{len(paths)}"
    d.mkdir(exist_ok=True)
    for p in paths:
        (d / p.name).write_bytes(p.read_bytes())
    out = subprocess.run([str(MXGUARD), "learn", f"--{kind}", str(d), "--set", f"state.dir={state}", *extra],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def crlf(p):
    return b"\r\n".join(p.read_bytes().replace(b"\r\n", b"\n").split(b"\n"))


def symbols_of(g, n):
    wait_for(lambda: len(g.events("accepted")) >= n, what=f"{n} accepted messages")
    return accepted_symbols(g)


def test_learnt_offline_then_classified_and_kept_across_restarts(make_gateway, sink, corpus, tmp_path):
    # Each message one lesson (no reinforcement: the counts below are messages; reinforcement
    # has its own test). The test mail sent below is not auto-learnt as ham (its scores are low
    # since the date checks read the 2002 Received fields: HEUR_DATE_PAST no longer lifts them);
    # GTUBE is still auto-learnt as spam further down.
    g = make_gateway(sink.port, knobs(verdict__tag_score="1000", verdict__quarantine_score="1000", verdict__reject_score="1000",
                                      bayes__snapshot_s="3600", bayes__journal_sync_ms="100", bayes__reinforce_max="0",
                                      bayes__autolearn_ham_score="-1000"), start=False)
    g.state.mkdir(parents=True)
    said = learn(g.state, "spam", corpus[("train", "spam")][:300], "--set", "bayes.reinforce_max=0")
    assert "learnt 300 messages as spam" in said, said
    said = learn(g.state, "ham", corpus[("train", "ham")][:300], "--set", "bayes.reinforce_max=0")
    # Two of the 300 ham are one feed digest delivered twice (easy_ham 02082 and 02163: the same
    # text, relays, sender): the same tokens, learnt once.
    assert "learnt 300 messages as ham (1 learnt so already) into" in said and "it holds 300 spam and 299 ham" in said, said
    # explain reads the same table (and never writes it).
    out = subprocess.run([str(MXGUARD), "explain", str(corpus[("test", "spam")][0]), "--set", f"state.dir={g.state}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Bayes: spam probability" in out.stdout and "(300 spam, 299 ham learnt)" in out.stdout, out.stdout
    assert "was learnt as" not in out.stdout, out.stdout
    # A message it learnt: explain says so (what was learnt of it counts in the probability).
    out = subprocess.run([str(MXGUARD), "explain", str(corpus[("train", "spam")][0]), "--set", f"state.dir={g.state}"],
                         capture_output=True, text=True, timeout=60)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert f"Bayes: this message was learnt as spam on {today}" in out.stdout, out.stdout
    g.start()
    ev = g.wait_events("bayes_loaded")[-1]
    assert (ev["spam"], ev["ham"]) == (300, 299) and ev["tokens"] > 10000, ev
    spams, hams = corpus[("test", "spam")][:20], corpus[("test", "ham")][:20]
    for p in spams + hams:
        assert send_message(g.port, crlf(p), "sender@client.example", src="127.0.0.90")[0] == 250
    syms = symbols_of(g, 40)
    spam_hits = sum("BAYES_SPAM" in s for s in syms[:20])
    ham_hits = sum("BAYES_HAM" in s for s in syms[20:])
    m = g.metrics()
    assert m['mxguard_bayes_verdicts_total{symbol="BAYES_SPAM"}'] == sum("BAYES_SPAM" in s for s in syms), m
    assert spam_hits >= 16 and ham_hits >= 16, (spam_hits, ham_hits, syms)
    assert sum("BAYES_SPAM" in s for s in syms[20:]) <= 1, syms[20:]
    # Live learning through the admin socket, then a clean stop saves it.
    said = learn(g.state, "spam", corpus[("train", "spam")][300:310])
    assert "learnt 10 messages as spam; the table holds 310 spam and 299 ham" in said, said
    g.stop()
    assert "bayes_saved" in [e["event"] for e in g.events()]
    g.start()
    assert (g.wait_events("bayes_loaded")[-1]["spam"]) == 310
    # kill -9 long before the next snapshot: the journal has what was learnt since the last one,
    # through the admin socket (answered once durable) and auto-learnt (fsync'd within 100 ms).
    learn(g.state, "ham", corpus[("train", "ham")][300:305])
    from test_content import message, send
    assert send(g.port, message(body="This is certain spam: XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"))[0] == 550
    g.wait_events("bayes_autolearn")
    wait_for(lambda: g.metrics()['mxguard_bayes_learned_messages{kind="spam"}'] == 311, what="the auto-learnt lesson applied")
    time.sleep(0.5)
    g.kill9()
    # A torn record at the journal's end (a crash mid-append) is left out, nothing else.
    with open(g.state / "bayes.journal", "ab") as j:
        j.write(b"\x01\x00\x00\xff\xff")
    g.start()
    ev = g.wait_events("bayes_loaded")[-1]
    assert (ev["spam"], ev["ham"]) == (311, 304) and ev["replayed"] == 6 and ev["torn_bytes"] == 5, ev
    # A clean stop writes a snapshot and an empty journal.
    g.stop()
    g.start()
    ev = g.wait_events("bayes_loaded")[-1]
    assert (ev["spam"], ev["ham"], ev["replayed"]) == (311, 304, 0), ev


def test_an_mbox_is_learnt_a_message_at_a_time(corpus, tmp_path):
    # A spam trap's mbox: each message after its "From " envelope line (body lines that begin
    # so are quoted ">From ", as mbox writers do). The progress bar on stderr ends at 100 %.
    state = tmp_path / "state"
    state.mkdir()
    mbox = tmp_path / "trap.mbox"
    with mbox.open("wb") as f:
        for p in corpus[("train", "spam")][:20]:
            lines = p.read_bytes().split(b"\n")
            f.write(b"From trap@example.net Thu Jan  1 00:00:00 2026\n" + b"\n".join(b">" + l if l.startswith(b"From ") else l for l in lines) + b"\n")
    # On a terminal, a progress bar on stderr; to a pipe (a script, cron), the summary alone.
    master, terminal = pty.openpty()
    out = subprocess.run([str(MXGUARD), "learn", "--spam", str(mbox), "--set", f"state.dir={state}"],
                         stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=120)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert out.returncode == 0, drawn
    assert "learnt 20 messages as spam" in out.stdout, out.stdout
    assert drawn.decode().rstrip().endswith("] 20 spam, 100 %"), drawn
    again = subprocess.run([str(MXGUARD), "learn", "--spam", str(mbox), "--set", f"state.dir={state}"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert "learnt 20 messages as spam (20 learnt so already)" in again.stdout, again.stdout
    # What it learnt is what the same messages as files teach.
    files_state = tmp_path / "files"
    files_state.mkdir()
    said = learn(files_state, "spam", corpus[("train", "spam")][:20])
    held = lambda text: text.split("it holds ")[1]
    assert held(said) == held(out.stdout), (said, out.stdout)


def test_no_verdict_before_the_kick_in_and_a_damaged_table_is_set_aside(make_gateway, sink, corpus):
    g = make_gateway(sink.port, knobs(bayes__min_learned="50"), start=False)
    g.state.mkdir(parents=True)
    learn(g.state, "spam", corpus[("train", "spam")][:49])
    learn(g.state, "ham", corpus[("train", "ham")][:60])
    g.start()
    for p in corpus[("test", "spam")][:5]:
        assert send_message(g.port, crlf(p), "sender@client.example", src="127.0.0.90")[0] in (250, 550)
    wait_for(lambda: len(g.events("accepted")) + len(g.events("message_rejected")) >= 5, what="5 verdicts")
    assert not any("BAYES_" in s for s in accepted_symbols(g)), "49 spam learnt: below the kick-in of 50"
    # One more spam (live) and the classifier speaks.
    learn(g.state, "spam", corpus[("train", "spam")][49:50])
    p = corpus[("test", "spam")][0]
    send_message(g.port, crlf(p), "sender@client.example", src="127.0.0.90")
    wait_for(lambda: any("BAYES_" in s for s in accepted_symbols(g) + [e.get("symbols", "") for e in g.events("message_rejected")]),
             what="a Bayes symbol after the kick-in")
    g.stop()
    # A damaged file is moved aside, the gateway starts with an empty table and says so.
    (g.state / "bayes.db").write_bytes(b"MXGBAYES1\ngarbage")
    g.start()
    assert "moved aside" in g.wait_events("bayes_error")[-1]["error"]
    assert g.wait_events("bayes_loaded")[-1]["spam"] == 0
    assert (g.state / "bayes.bad").exists()


def test_the_gateway_learns_from_its_own_verdicts_and_honeypots(make_gateway, sink):
    from test_content import message, send
    g = make_gateway(sink.port, knobs(bayes__autolearn_spam_score="50", bayes__autolearn_ham_score="0"), start=False)
    g.write_lists({
        "keywords-blacklist.txt": "mortgage, click here\n",
        "to-blacklist.txt": "trap@example.test:Honeypot\n",
    })
    g.start()
    # Certain spam (a keyword line, score 100): learnt as spam.
    assert send(g.port, message(body="Low mortgage rates, click here.\r\n"))[0] == 550
    ev = g.wait_events("bayes_autolearn")[-1]
    assert (ev["as"], ev["why"]) == ("spam", "score"), ev
    # Clean mail (score 0 <= 0 here): learnt as ham.
    assert send(g.port, message(body="Minutes of Tuesday's meeting are attached.\r\n"))[0] == 250
    ev = g.wait_events("bayes_autolearn", n=2)[-1]
    assert ev["as"] == "ham", ev
    # In between (a shouting subject scores a little): not learnt.
    assert send(g.port, message(subject="READ THIS NOW PLEASE", body="Hello.\r\n"))[0] == 250
    wait_for(lambda: len(g.events("accepted")) >= 2, what="the third message")
    # A honeypot hit: learnt as spam whatever it scored.
    send(g.port, message(body="Hello there, friend.\r\n"), rcpts=("trap@example.test",))
    ev = g.wait_events("bayes_autolearn", n=3)[-1]
    assert (ev["as"], ev["why"]) == ("spam", "honeypot"), ev
    assert len(g.events("bayes_autolearn")) == 3
    # The learner thread applies them and publishes the counts within bayes.journal_sync_ms.
    learnt = lambda m: (m['mxguard_bayes_learned_messages{kind="spam"}'], m['mxguard_bayes_learned_messages{kind="ham"}'])
    wait_for(lambda: learnt(g.metrics()) == (2, 1), what="two spam and one ham learnt")
    m = g.metrics()
    assert m["mxguard_bayes_lessons_lost"] == 0, m
    assert m["mxguard_bayes_tokens"] > 10 and m["mxguard_bayes_dropped_tokens"] == 0


def test_report_addresses_learn_forwarded_mail_from_the_providers_network_only(make_gateway, sink):
    from test_content import message, send
    g = make_gateway(sink.port, knobs(policy__trusted_networks="127.0.0.90/32", bayes__report_spam_address="spam@example.test",
                                      bayes__report_ham_address="ham@example.test"))
    one = message(subject="cheap meds", body="Buy cheap meds online now.\r\n").decode()
    two = message(subject="cheap loans", body="Low rate loans, apply today.\r\n").decode()
    forward = ("From: User <u@example.test>\r\nTo: spam@example.test\r\nSubject: Fwd: spam\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nThese are spam.\r\n"
               f"--f\r\nContent-Type: message/rfc822\r\n\r\n{one}\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n{two}\r\n--f--\r\n").encode()
    code, text = send(g.port, forward, rcpts=("spam@example.test",))
    assert code == 250 and b"report learnt" in text, (code, text)
    ev = g.wait_events("bayes_report")[-1]
    assert (ev["as"], ev["messages"], ev["spam"], ev["ham"]) == ("spam", 2, 2, 0), ev
    # A report beside an ordinary recipient: the report is learnt, the recipient gets the mail.
    code, _ = send(g.port, message(body="Lunch at noon?\r\n"), rcpts=("ham@example.test", "u@example.test"))
    assert code == 250
    ev = g.wait_events("bayes_report", n=2)[-1]
    assert (ev["as"], ev["messages"], ev["ham"]) == ("ham", 1, 1), ev
    wait_for(lambda: sink.stats()["messages"] == 1, what="the ordinary recipient's copy")
    # From outside the provider's network: refused at RCPT, nothing learnt.
    c = smtplib.SMTP(timeout=20, source_address=("127.0.0.91", 0), local_hostname="client.example")
    c.connect("127.0.0.1", g.port)
    c.ehlo("client.example")
    c.mail("x@outside.example")
    code, text = c.rcpt("spam@example.test")
    c.quit()
    assert code == 550 and b"provider's network" in text, (code, text)
    assert len(g.events("bayes_report")) == 2
    assert sink.stats()["messages"] == 1, "reports are never delivered"


def test_a_message_learnt_twice_counts_once_and_reported_back_changes_sides(make_gateway, sink):
    from test_content import message, send
    g = make_gateway(sink.port, knobs(policy__trusted_networks="127.0.0.90/32", bayes__report_spam_address="spam@example.test",
                                      bayes__report_ham_address="ham@example.test", bayes__journal_sync_ms="50"))
    one = message(subject="cheap meds", body="Buy cheap meds online now.\r\n").decode()

    def report(to):
        forward = ("From: User <u@example.test>\r\nTo: " + to + "\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
                   f"--f\r\nContent-Type: message/rfc822\r\n\r\n{one}\r\n--f--\r\n").encode()
        code, text = send(g.port, forward, rcpts=(to,))
        assert code == 250 and b"report learnt" in text, (code, text)

    learnt = lambda: (g.metrics()['mxguard_bayes_learned_messages{kind="spam"}'], g.metrics()['mxguard_bayes_learned_messages{kind="ham"}'])
    report("spam@example.test")
    report("spam@example.test")
    g.wait_events("bayes_report", n=2)
    wait_for(lambda: learnt() == (1, 0), what="one spam lesson from two reports of one message")
    # The same message reported as ham (a user's mistake undone): ham now, spam no longer.
    report("ham@example.test")
    g.wait_events("bayes_report", n=3)
    wait_for(lambda: learnt() == (0, 1), what="the message moved from spam to ham")
    m = g.metrics()
    assert (m["mxguard_bayes_lessons_repeated"], m["mxguard_bayes_lessons_switched"]) == (1, 1), m
    # Remembered across a restart (in the snapshot written at shutdown).
    g.stop()
    g.start()
    report("ham@example.test")
    g.wait_events("bayes_report", n=4)
    time.sleep(0.5)
    assert learnt() == (0, 1), learnt()


def test_a_misjudged_lesson_is_learnt_more_than_once_and_a_crash_keeps_the_count(make_gateway, sink, corpus):
    """Train on error (bayes.reinforce_margin, bayes.reinforce_max): a message Bayes misjudged
    just before it was learnt is learnt again while still misjudged; the journal carries how many
    times, and taking the lesson back takes back every one."""
    g = make_gateway(sink.port, knobs(bayes__snapshot_s="3600", bayes__journal_sync_ms="50"), start=False)
    g.state.mkdir(parents=True)
    learn(g.state, "spam", corpus[("train", "spam")][:300])
    # Past the kick-in (200 of each) the ham the table still gets wrong or barely right count more.
    said = learn(g.state, "ham", corpus[("train", "ham")][:300])
    assert "misjudged, learnt more than once" in said, said
    held_ham = int(said.split(" spam and ")[1].split(" ham")[0])
    assert held_ham > 299, said
    g.start()
    ev = g.wait_events("bayes_loaded")[-1]
    assert (ev["spam"], ev["ham"]) == (300, held_ham), ev
    # A user reports a plain ham as spam by mistake: Bayes judges it ham, so the lesson is
    # learnt twice (after one more, its words the table had never seen count as spam twice, and
    # the table no longer judges it ham).
    mistaken = corpus[("test", "ham")][0]
    said = learn(g.state, "spam", [mistaken])
    assert "learnt 1 messages as spam (1 misjudged, learnt more than once)" in said and f"holds 302 spam and {held_ham} ham" in said, said
    assert g.metrics()["mxguard_bayes_lessons_reinforced"] == 1
    explain = lambda: subprocess.run([str(MXGUARD), "explain", str(mistaken), "--set", f"state.dir={g.state}"],
                                     capture_output=True, text=True, timeout=60).stdout
    assert "learnt as spam on" in explain() and "2 times (it was misjudged then)" in explain(), explain()
    # kill -9 before any snapshot: the journal replays both lessons, not one and not a new
    # judgement.
    g.kill9()
    g.start()
    ev = g.wait_events("bayes_loaded")[-1]
    assert (ev["spam"], ev["ham"], ev["replayed"]) == (302, held_ham, 1), ev
    # Reported back as ham: both spam lessons are taken back.
    said = learn(g.state, "ham", [mistaken])
    assert "1 moved from the other side" in said and "holds 300 spam and" in said, said
