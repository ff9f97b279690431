"""DKIM, ARC and DMARC end to end: messages signed (and ARC-sealed) with dkimpy, keys and policies served
by our DNS server on 127.0.0.1, sent to the real gateway with smtplib; the reply, the
Authentication-Results header at the sink and the quarantine table show what the gateway made of
them."""

import email.utils
import sqlite3
import time

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import policy_knobs, send_message, wait_for

HOST = b"mx.example.test"


def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64
    p = base64.b64encode(der).decode()
    # A 2048-bit key is longer than one TXT string (255 bytes): split, as real zones do.
    txt = " ".join(f'"{part}"' for part in [f"v=DKIM1; k=rsa; p={p}"[i:i + 200] for i in range(0, len(p) + 20, 200)])
    return pem, txt


KEY, KEY_TXT = keypair()
LIST_KEY, LIST_KEY_TXT = keypair()


@pytest.fixture
def zones(dns):
    dns.zone(f"""
sel._domainkey.signed.example. 60 IN TXT {KEY_TXT}
_dmarc.signed.example. 60 IN TXT "v=DMARC1; p=reject"
signed.example. 60 IN TXT "v=spf1 ip4:127.0.0.30 -all"
signed.example. 60 IN MX 10 mx.signed.example.
_dmarc.quar.example. 60 IN TXT "v=DMARC1; p=quarantine"
quar.example. 60 IN TXT "v=spf1 ip4:127.0.0.30 -all"
quar.example. 60 IN MX 10 mx.quar.example.
_dmarc.testing.example. 60 IN TXT "v=DMARC1; p=reject; t=y"
testing.example. 60 IN TXT "v=spf1 -all"
testing.example. 60 IN MX 10 mx.testing.example.
arc._domainkey.list.example. 60 IN TXT {LIST_KEY_TXT}
""")
    return dns


def auth_knobs(dns, **extra):
    return policy_knobs(dns, **extra)


def message(from_addr, body="Hello, this is the quarterly report.\r\n", extra=""):
    return (f"From: Ann <{from_addr}>\r\nTo: <u@example.test>\r\nSubject: report\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{time.time_ns()}@x>\r\n{extra}\r\n{body}").encode()


def signed(from_addr="ann@signed.example", **kw):
    m = message(from_addr, **kw)
    sig = dkim.sign(m, b"sel", b"signed.example", KEY, include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + m


def send(port, data, mail_from):
    return send_message(port, data, mail_from)


def results_header(msg):
    """The Authentication-Results field the gateway added (unfolded)."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    fields = head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
    ours = [f for f in fields if f.lower().startswith("authentication-results: mx.example.test")]
    assert len(ours) == 1, fields
    return ours[0]


def test_a_signed_message_passes_dkim_and_dmarc_and_says_so_downstream(make_gateway, sink, zones):
    g = make_gateway(sink.port, auth_knobs(zones))
    # SPF fails for this client: DMARC passes on the aligned DKIM signature alone.
    code, text = send(g.port, signed(), "ann@signed.example")
    assert code == 250, (code, text)
    wait_for(lambda: len(sink.messages()) == 1, what="delivery")
    ar = results_header(sink.messages()[0])
    assert "dkim=pass header.i=@signed.example header.s=sel" in ar, ar
    assert "spf=fail" in ar and "dmarc=pass header.from=signed.example" in ar, ar
    syms = g.wait_events("accepted")[0]["symbols"]
    assert "DKIM_VALID" in syms and "DMARC_PASS" in syms, syms


def test_a_broken_signature_fails_dmarc_and_p_reject_refuses(make_gateway, sink, zones):
    g = make_gateway(sink.port, auth_knobs(zones))
    tampered = signed().replace(b"quarterly report", b"QUARTERLY REPORT")
    code, text = send(g.port, tampered, "ann@signed.example")
    assert code == 550 and b"DMARC policy for signed.example" in text, (code, text)
    ev = g.wait_events("dmarc_fail")[0]
    assert ev["policy"] == "reject"
    # The same with the knob asking to quarantine what p=reject would refuse.
    g.sysctl("dmarc.reject_action=quarantine")
    code, text = send(g.port, tampered, "ann@signed.example")
    assert code == 250, (code, text)
    with sqlite3.connect(g.state / "quarantine.db") as db:
        wait_for(lambda: db.execute("SELECT count(*) FROM recipients").fetchone()[0] == 1, what="quarantined copy")
    assert sink.messages() == []


def test_p_quarantine_quarantines_and_t_y_lowers_reject_to_quarantine(make_gateway, sink, zones):
    g = make_gateway(sink.port, auth_knobs(zones))
    assert send(g.port, message("bob@quar.example"), "bob@quar.example")[0] == 250
    assert send(g.port, message("bob@testing.example"), "bob@testing.example")[0] == 250
    with sqlite3.connect(g.state / "quarantine.db") as db:
        wait_for(lambda: db.execute("SELECT count(*) FROM recipients").fetchone()[0] == 2, what="both quarantined")
    # Enforcement off: the failure is scored, nothing more.
    g.sysctl("dmarc.enforce=0")
    assert send(g.port, message("bob@quar.example"), "bob@quar.example")[0] == 250
    wait_for(lambda: len(sink.messages()) == 1, what="delivery with enforcement off")
    assert "dmarc=fail" in results_header(sink.messages()[0])


def test_results_in_our_name_from_outside_are_removed(make_gateway, sink, zones):
    g = make_gateway(sink.port, auth_knobs(zones))
    forged = message("carol@unsigned.example",
                     extra="Authentication-Results: mx.example.test; dkim=pass header.d=bank.example\r\n"
                           "Authentication-Results: elsewhere.example; spf=pass\r\n")
    assert send(g.port, forged, "carol@unsigned.example")[0] == 250
    wait_for(lambda: len(sink.messages()) == 1, what="delivery")
    m = sink.messages()[0]
    assert b"header.d=bank.example" not in m
    assert b"Authentication-Results: elsewhere.example; spf=pass" in m
    assert "dkim=none" in results_header(m)


def arc_sealed(msg):
    """What a mailing list does: changes the message (breaking the author's signature), records
    the results it saw and seals them with its own key."""
    changed = msg.replace(b"Subject: report", b"Subject: [list] report")
    ar = b"Authentication-Results: list.example; dkim=pass header.d=signed.example; dmarc=pass header.from=signed.example\r\n"
    sealed = ar + changed
    headers = dkim.arc_sign(sealed, b"arc", b"list.example", LIST_KEY, b"list.example")
    return b"".join(h.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for h in headers) + sealed


def test_a_trusted_arc_sealer_excuses_a_dmarc_failure(make_gateway, sink, zones):
    g = make_gateway(sink.port, auth_knobs(zones))
    relayed = arc_sealed(signed())
    code, text = send(g.port, relayed, "list-bounces@list.example")
    assert code == 550, "untrusted sealer: the author's p=reject applies"
    g.sysctl("auth.arc_trusted_sealers=list.example")
    code, text = send(g.port, relayed, "list-bounces@list.example")
    assert code == 250, (code, text)
    wait_for(lambda: len(sink.messages()) == 1, what="delivery")
    ar = results_header(sink.messages()[0])
    assert "arc=pass" in ar and "dmarc=fail" in ar, ar
    syms = g.wait_events("accepted")[0]["symbols"]
    assert "ARC_PASS" in syms and "DMARC_ARC_OVERRIDE" in syms, syms
