"""Learned symbol weights end to end: lessons recorded by `mxguard learn` (offline), by the report
addresses and by quarantine decisions, the model fitted and written, `mxguard weights` and
`mxguard explain` reading it, mail scored with it over SMTP (each symbol's learned points in the
verdict, adding up to the score), pinned symbols keeping their hand-set scores, and
`weights.enabled` switching back to the hand-set scores live. The mail is written here."""

import random
import re
import subprocess

from conftest import MXGUARD, wait_for
from test_content import accepted_symbols, knobs, message, send

SPAM_WORDS = ("cheap pills offer winner prize casino bonus credit loan viagra discount urgent claim "
              "guaranteed free money wire transfer bitcoin investment lottery exclusive deal").split()
HAM_WORDS = ("meeting agenda quarterly budget review draft minutes project schedule team lunch "
             "invoice attached thanks regards tomorrow report figures office notes plan").split()


def written(kind, n, seed):
    """n messages of one kind, each with its own text; spam links to an address literal."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        words = SPAM_WORDS if kind == "spam" else HAM_WORDS
        text = " ".join(r.choice(words) for _ in range(40))
        subject = " ".join(r.choice(words) for _ in range(3))
        if kind == "spam":
            text += f"\r\nClaim it at http://198.51.100.{i % 200 + 1}/claim?id={i}\r\n"
            if r.random() < 0.5:
                subject += " !!!"
        elif r.random() < 0.1:
            subject += " !!!"
        out.append(message(subject=subject, body=text + "\r\n"))
    return out


def learn(state, kind, messages, *extra):
    d = state.parent / f"learn-{kind}-{len(messages)}-{len(list(state.parent.glob('learn-*')))}"
    d.mkdir()
    for i, m in enumerate(messages):
        (d / f"{i}.eml").write_bytes(m)
    out = subprocess.run([str(MXGUARD), "learn", f"--{kind}", str(d), "--set", f"state.dir={state}", *extra],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def points(symbols):
    """{NAME: points} of an accepted event's symbol list ("NAME(points) ...")."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"([A-Z0-9_]+)\((-?[0-9.]+)\)", symbols)}


WEIGHTS = dict(bayes__min_learned="20", weights__min_lessons="20", bayes__reinforce_max="0",
               bayes__autolearn="0", verdict__tag_score="5", verdict__quarantine_score="50",
               verdict__reject_score="100")


def test_lessons_fit_a_model_that_scores_mail_and_explains_each_part(make_gateway, sink):
    g = make_gateway(sink.port, knobs(policy__trusted_networks="127.0.0.90/32",
                                      bayes__report_spam_address="spam@example.test", **WEIGHTS), start=False)
    g.state.mkdir(parents=True)
    sets = [f"{k.replace('__', '.')}={v}" for k, v in WEIGHTS.items()]
    extra = [x for s in sets for x in ("--set", s)]
    said = learn(g.state, "spam", written("spam", 60, 1), *extra)
    assert "learnt 60 messages as spam" in said and "learned weights: not fitted yet (60 spam and 0 ham lessons kept)" in said, said
    said = learn(g.state, "ham", written("ham", 60, 2), *extra)
    assert "learned weights fitted on 60 spam and 60 ham lessons (in force;" in said, said
    lessons = (g.state / "weights.lessons").read_text().splitlines()
    assert len(lessons) == 120 and sum(l.startswith("S ") for l in lessons) == 60, lessons[:3]
    # The first lessons met a table too young to judge ("-"); the ham, learnt after the spam,
    # were judged by it once bayes.min_learned of each kind were in.
    assert lessons[0].startswith("S - ") and not lessons[-1].startswith("H - "), (lessons[0], lessons[-1])
    out = subprocess.run([str(MXGUARD), "weights", "--set", f"state.dir={g.state}", *extra], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "lessons: 60 spam, 60 ham" in out.stdout and "fitted on 60 spam and 60 ham lessons, in force" in out.stdout, out.stdout
    rows = {l.split()[0]: l.split()[1:] for l in out.stdout.splitlines() if re.match(r"^[A-Z_]+ +-?[0-9.]+ +-?[0-9.]+ +[-+][0-9.]+ +[0-9]+$", l)}
    assert "URL_IP_LITERAL" in rows and int(rows["URL_IP_LITERAL"][3]) == 60, out.stdout
    # A written spam, not learnt: explain scores it with the learned weights, and says so.
    probe = g.state.parent / "probe.eml"
    probe.write_bytes(written("spam", 1, 99)[0])
    out = subprocess.run([str(MXGUARD), "explain", str(probe), "--set", f"state.dir={g.state}", *extra], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "weights: learned, fitted on 60 spam and 60 ham lessons" in out.stdout, out.stdout
    assert "LEARNED_BASE" in out.stdout and "(learned weight; hand-set 3)" in out.stdout, out.stdout

    g.start()
    ev = g.wait_events("weights_loaded")[-1]
    assert (ev["spam"], ev["ham"], ev["model"], ev["in_force"]) == (60, 60, "yes", "yes"), ev
    # From outside the trusted network (which only the report address needs).
    for m in written("spam", 3, 7) + written("ham", 3, 8):
        assert send(g.port, m, src="127.0.0.91")[0] == 250
    wait_for(lambda: len(accepted_symbols(g)) == 6, what="six accepted")
    accepted = g.events("accepted")
    for e in accepted:
        p = points(e["symbols"])
        assert "LEARNED_BASE" in p, e
        # The parts add up to the score the thresholds judged (to the rounding of the log line).
        assert abs(sum(p.values()) - float(e["score"])) < 0.01 * len(p) + 0.01, e
    spam_scores = [float(e["score"]) for e in accepted[:3]]
    ham_scores = [float(e["score"]) for e in accepted[3:]]
    assert min(spam_scores) > 5 > max(ham_scores), (spam_scores, ham_scores)
    # Pinned: GTUBE keeps its hand-set 1000 and still rejects.
    code, _ = send(g.port, message(body="XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"), src="127.0.0.91")
    assert code == 550
    assert "GTUBE(1000)" in g.wait_events("message_rejected")[-1]["symbols"]

    # A report adds lessons (judged by Bayes first); the lessons file grows by one.
    fwd = ("From: User <u@example.test>\r\nTo: spam@example.test\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nSpam.\r\n"
           f"--f\r\nContent-Type: message/rfc822\r\n\r\n{written('spam', 1, 11)[0].decode()}\r\n--f--\r\n").encode()
    code, text = send(g.port, fwd, rcpts=("spam@example.test",))
    assert code == 250 and b"report learnt" in text
    wait_for(lambda: len((g.state / "weights.lessons").read_text().splitlines()) == 121, what="the reported lesson recorded")
    last = (g.state / "weights.lessons").read_text().splitlines()[-1]
    assert last.startswith("S 0.") and "URL_IP_LITERAL=" in last, last

    # Off, live: the hand-set scores again, no LEARNED_BASE.
    g.sysctl("weights.enabled=0")
    assert send(g.port, written("spam", 1, 12)[0], src="127.0.0.91")[0] == 250
    wait_for(lambda: len(g.events("accepted")) == 7, what="a seventh accepted")
    p = points(g.events("accepted")[-1]["symbols"])
    assert "LEARNED_BASE" not in p and p.get("URL_IP_LITERAL") == 3, p


def test_quarantine_decisions_are_lessons_and_the_superadmin_reads_the_weights(make_gateway, sink):
    from test_console import cli
    from test_console_api import api
    g = make_gateway(sink.port, knobs(relay__domains="example.test", **dict(WEIGHTS, verdict__reject_score="0")), start=False)
    g.state.mkdir(parents=True)
    (g.state / "lists").mkdir()
    (g.state / "lists" / "keywords-blacklist.txt").write_text("hold this one\n")
    learn(g.state, "spam", written("spam", 40, 21), "--set", "bayes.min_learned=20", "--set", "weights.min_lessons=20")
    learn(g.state, "ham", written("ham", 40, 22), "--set", "bayes.min_learned=20", "--set", "weights.min_lessons=20")
    cli(g, "add", "root@isp.test", "--role", "superadmin", password="root's long password")
    root = cli(g, "token", "root@isp.test", "--label", "t")
    cli(g, "add", "ann@example.test", "--role", "user", password="ann's long password")
    ann = cli(g, "token", "ann@example.test", "--label", "t")
    g.start()
    p = g.console_port
    status, w = api(p, "GET", "/weights", root)
    assert status == 200 and w["in_force"] and w["lessons"] == {"spam": 40, "ham": 40}, w
    assert {s["name"] for s in w["model"]["symbols"]} >= {"URL_IP_LITERAL"}, w
    assert api(p, "GET", "/weights", ann)[0] == 403, "the superadmin's only"
    # Two copies held by the keyword (pinned at its hand-set 100, over the quarantine line).
    for seed in (31, 32):
        m = written("spam", 1, seed)[0].replace(b"Claim it at", b"Hold this one. Claim it at")
        assert send(g.port, m, rcpts=("ann@example.test",), src="127.0.0.91")[0] == 250
    wait_for(lambda: len(api(p, "GET", "/quarantine", root)[1]) == 2, what="two held copies")
    held = api(p, "GET", "/quarantine", root)[1]
    lessons = lambda: (g.state / "weights.lessons").read_text().splitlines()
    assert api(p, "POST", f"/quarantine/{held[0]['id']}/release", ann)[0] == 200
    wait_for(lambda: len(lessons()) == 81, what="the release recorded as a lesson")
    assert lessons()[-1].startswith("H 0.") and "KEYWORD_BL" not in lessons()[-1], lessons()[-1]
    assert api(p, "POST", f"/quarantine/{held[1]['id']}/spam", ann)[0] == 200
    wait_for(lambda: len(lessons()) == 82, what="the report recorded as a lesson")
    assert lessons()[-1].startswith("S 0."), lessons()[-1]
    # The console page shows the same table.
    status, w = api(p, "GET", "/weights", root)
    assert w["lessons"] == {"spam": 41, "ham": 41}, w
