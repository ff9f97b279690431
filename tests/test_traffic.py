"""Bulk fingerprints and sender reputation end to end over SMTP: copies of one text from many
client addresses become BULK; a copy of a text judged spam (a honeypot hit) BULK_SPAM; a text
learnt with `mxguard bulk-signature --learn` BULK_KNOWN; a client address that sent mostly spam
REP_IP_SPAM, its network REP_NET_SPAM, and past `reputation.ban_*` it is banned. Client addresses
are 127.0.0.x (one /24), so each test runs its own gateway."""

import subprocess

from conftest import MXGUARD, wait_for
from test_content import accepted_symbols, knobs, message, send

RUN = ("Dear customer, we are pleased to offer you an exclusive discount on our premium watches. "
       "Visit our online store today and save up to seventy percent on every order placed before the "
       "end of the month. Free shipping worldwide, secure payment, satisfaction guaranteed. Click the "
       "link below to browse the catalogue and claim your personal voucher now.")

OTHER = ("Hello neighbours, the street party is on Saturday from noon until late. Please bring a dish "
         "to share, chairs if you have spare ones, and your best stories about the old bakery that "
         "closed last spring. Children's games start at two and the band plays after six o'clock.")


def copy(text, n):
    """A copy of a run as spammers vary it: a name, a number, a hash-buster."""
    return message(subject=f"Offer {n}", body=f"Dear friend {n}, {text} Your code: {n * 7919} x{n:08x}q\r\n")


def test_copies_from_many_sources_then_a_judged_copy_then_a_learnt_signature(make_gateway, sink, tmp_path):
    # Week-long windows: a test never straddles a bucket boundary (counts stay whole numbers).
    g = make_gateway(sink.port, knobs(bulk__min_sources="5", bulk__window_s="604800", verdict__quarantine_score="1000",
                                      verdict__reject_score="1000", relay__domains="example.test,quiet.test"), start=False)
    lists = g.state / "lists"
    lists.mkdir(parents=True)
    (lists / "to-blacklist.txt").write_text("trap@example.test:Honeypot\n")
    (lists / "domain-policy.txt").write_text("quiet.test bulk = off\n")
    g.start()
    for n in range(8):
        assert send(g.port, copy(RUN, n), src=f"127.0.0.{10 + n}")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 8 and accepted_symbols(g), what="eight copies")
    assert not any("BULK" in s for s in syms[:3]), syms
    assert all("BULK(" in s for s in syms[6:]), syms
    # The same copies to a domain that turned the check off: no symbol.
    send(g.port, copy(RUN, 9), rcpts=("u@quiet.test",), src="127.0.0.30")
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 9 and accepted_symbols(g), what="the quiet domain's copy")
    assert "BULK" not in syms[8], syms[8]

    # A text first seen at a honeypot (judged spam), then from elsewhere: BULK_SPAM.
    send(g.port, copy(OTHER, 1), rcpts=("trap@example.test",), src="127.0.0.40")
    wait_for(lambda: g.events("ban"), what="the honeypot ban")
    assert send(g.port, copy(OTHER, 2), src="127.0.0.41")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 10 and accepted_symbols(g), what="the copy after the trap")
    assert "BULK_SPAM(6)" in syms[9], syms[9]

    # A learnt signature: BULK_KNOWN for a near copy, from a single source.
    spam = tmp_path / "run.eml"
    text = ("Congratulations, your mailbox was selected for our annual loyalty reward. To receive the "
            "gift card you only need to confirm your shipping details and pay a small handling fee "
            "with any major credit card within the next forty eight hours, after which the reward expires.")
    spam.write_bytes(copy(text, 1))
    loads = len(g.events("lists_loaded"))
    learn = [str(MXGUARD), "bulk-signature", "--learn", "--label", "loyalty reward", str(spam), "--set", f"state.dir={g.state}"]
    out = subprocess.run(learn, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "learnt 1 signature(s)" in out.stdout, (out.stdout, out.stderr)
    out = subprocess.run(learn, capture_output=True, text=True, timeout=30)
    assert "(listed)" in out.stdout and "nothing new to learn" in out.stdout, out.stdout
    g.wait_events("lists_loaded", n=loads + 1, timeout=15)
    assert send(g.port, copy(text, 2), src="127.0.0.50")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 11 and accepted_symbols(g), what="the known copy")
    assert "BULK_KNOWN(8)" in syms[10], syms[10]
    # A short message has no fingerprint at all; metrics count the bands.
    assert send(g.port, message(body="Lunch at noon?\r\n"), src="127.0.0.51")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 12 and accepted_symbols(g), what="the short one")
    assert "BULK" not in syms[11]


def test_a_spamming_address_earns_a_reputation_then_a_ban(make_gateway, sink):
    g = make_gateway(sink.port, knobs(reputation__min_messages="3", reputation__spam_ratio="0.7", reputation__ban_messages="6", reputation__ban_ratio="0.8",
                                      reputation__window_s="604800"), start=False)
    lists = g.state / "lists"
    lists.mkdir(parents=True)
    (lists / "keywords-blacklist.txt").write_text("cheap meds\n")
    g.start()
    for n in range(3):
        assert send(g.port, message(subject=f"meds {n}", body="Buy cheap meds online.\r\n"), src="127.0.0.20")[0] == 550
    # Clean mail from it now carries its history; a neighbour's does not yet (a network needs
    # twice as many).
    assert send(g.port, message(body="Minutes attached.\r\n"), src="127.0.0.20")[0] == 250
    assert send(g.port, message(body="Agenda attached.\r\n"), src="127.0.0.21")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 2 and accepted_symbols(g), what="two clean messages")
    assert "REP_IP_SPAM(4)" in syms[0] and "REP_" not in syms[1], syms
    # Two more spam: 5 of its 6 messages, past reputation.ban_* (6 messages, 0.8): banned.
    for n in range(3, 5):
        send(g.port, message(subject=f"meds {n}", body="Buy cheap meds online.\r\n"), src="127.0.0.20")
    ev = g.wait_events("ban")[-1]
    assert (ev["client"], ev["why"]) == ("127.0.0.20", "reputation"), ev
    # Its network has 7 messages, 5 spam (over 0.7): a neighbour's mail now carries that.
    assert send(g.port, message(body="Agenda attached.\r\n"), src="127.0.0.22")[0] == 250
    syms = wait_for(lambda: len(accepted_symbols(g)) >= 3 and accepted_symbols(g), what="the neighbour's message")
    assert "REP_NET_SPAM(2)" in syms[2] and "REP_IP" not in syms[2], syms
    code, _ = send_refused(g.port, "127.0.0.20")
    assert code == 554, code
    m = g.metrics()
    assert m["mxguard_reputation_senders"] >= 2, m


def send_refused(port, src):
    import smtplib
    try:
        c = smtplib.SMTP(timeout=20, source_address=(src, 0), local_hostname="client.example")
        code, text = c.connect("127.0.0.1", port)
        c.close()
        return code, text
    except smtplib.SMTPConnectError as e:
        return e.smtp_code, e.smtp_error
