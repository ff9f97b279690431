"""SMTP smuggling, end to end: every shape of a false "end of data" an upstream server might take
for one (SEC Consult, December 2023; Postfix CVE-2023-51764), each sent inside a message ahead of
a forged second transaction, with DATA (command by command and pipelined) and with BDAT. The
gateway's only end of data is <CR><LF>.<CR><LF>: the message and the forgery are refused as one,
the connection ends, and nothing of either reaches the sink."""

import socket
import smtplib

import pytest

from conftest import raw, reply, wait_for

SHAPES = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r", b"\r.\n"]
MODES = ["data", "data-pipelined", "bdat", "bdat-pipelined"]

ENVELOPE = b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\n"
FORGED = (b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
          b"Subject: forged\r\n\r\nforged\r\n.\r\n")


def replies_until_close(f):
    """Every reply the gateway sends until it closes the connection."""
    out = []
    while True:
        try:
            out.append(reply(f))
        except (EOFError, ConnectionResetError):
            return out


def attack(port, shape, mode):
    body = b"Subject: smuggle\r\n\r\nhello" + shape + FORGED
    s, f = raw(port)
    assert reply(f)[0] == 220
    s.sendall(b"EHLO c\r\n")
    reply(f)
    got = []
    if mode.startswith("data"):
        if mode == "data":
            s.sendall(ENVELOPE + b"DATA\r\n")
            got += [reply(f) for _ in range(3)]
            s.sendall(body)
        else:
            s.sendall(ENVELOPE + b"DATA\r\n" + body)
    else:
        chunk = b"BDAT %d LAST\r\n" % len(body) + body
        if mode == "bdat":
            s.sendall(ENVELOPE)
            got += [reply(f) for _ in range(2)]
            s.sendall(chunk)
        else:
            s.sendall(ENVELOPE + chunk)
    # Whatever the client sends after the refusal goes unanswered: the gateway has hung up.
    try:
        s.sendall(b"QUIT\r\n")
    except OSError:
        pass
    got += replies_until_close(f)
    s.close()
    return [code for code, _ in got], [lines[-1] for _, lines in got]


@pytest.mark.parametrize("mode", MODES)
def test_no_smuggling_shape_gets_a_message_through(gateway, sink, mode):
    for shape in SHAPES:
        codes, texts = attack(gateway.port, shape, mode)
        want = [250, 250, 354, 550] if mode.startswith("data") else [250, 250, 550]
        assert codes == want, (shape, mode, texts)
        assert "5.5.2" in texts[-1] and "bare <" in texts[-1], (shape, texts)
        assert not any("queued as" in t for t in texts)
    # A clean message after the attacks is the only one that reaches the sink.
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: clean\r\n\r\nclean\r\n")
    wait_for(lambda: sink.stats()["messages"] >= 1, what="the clean message")
    msgs = sink.messages()
    assert len(msgs) == 1 and b"Subject: clean" in msgs[0] and b"forged" not in msgs[0]
    m = gateway.metrics()
    assert m['mxguard_messages_total{result="rejected"}'] == len(SHAPES)
    assert m['mxguard_messages_total{result="accepted"}'] == 1
    refused = gateway.wait_events("message_refused", n=len(SHAPES))
    assert all(e["from"] == "a@sender.example" for e in refused), refused


def test_dot_after_bare_lf_is_content_and_only_crlf_dot_crlf_ends(gateway, sink):
    """The smuggled end is no end: the gateway keeps reading until the real CRLF.CRLF, and only
    then refuses (nothing answers the shape itself)."""
    s, f = raw(gateway.port)
    reply(f)
    s.sendall(b"EHLO c\r\n")
    reply(f)
    s.sendall(ENVELOPE + b"DATA\r\n")
    assert [reply(f)[0] for _ in range(3)] == [250, 250, 354]
    s.sendall(b"Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<ceo@bank.example>\r\n")
    s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        s.recv(1)  # the socket itself: a timed-out makefile reader cannot be read again
    s.settimeout(10)
    s.sendall(b"\r\n.\r\n")
    code, lines = reply(f)
    assert code == 550 and "bare <LF>" in lines[-1]
    assert replies_until_close(f) == []
    s.close()
