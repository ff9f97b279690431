"""The SMTP server as a real client sees it: every verb and extension, pipelining, TLS, BDAT,
limits, and bad input, against the real gateway binary."""

import smtplib
import ssl
import subprocess
import time

from conftest import raw, reply, wait_for


def test_ehlo_advertises_every_extension(gateway):
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        code, text = c.ehlo("client.example")
        assert code == 250
        features = text.decode().splitlines()
        assert features[0] == "mx.example.test"
        for ext in ["PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING",
                    "STARTTLS"]:
            assert ext in features, (ext, features)


def test_every_verb(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        assert c.helo("client.example")[0] == 250
        assert c.noop()[0] == 250
        assert c.verify("someone")[0] == 252
        assert c.docmd("HELP")[0] == 214
        assert c.docmd("EXPN", "list")[0] == 502
        assert c.docmd("AUTH", "PLAIN")[0] == 502
        assert c.docmd("ETRN", "x")[0] == 502
        assert c.rset()[0] == 250
        assert c.mail("a@sender.example")[0] == 250
        assert c.rcpt("u@example.test")[0] == 250
        code, msg = c.data(b"Subject: verbs\r\n\r\nhello\r\n")
        assert code == 250 and b"queued as" in msg
        assert c.docmd("FROBNICATE")[0] == 500
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")


def test_unknown_command_and_sequence_errors(gateway):
    s, f = raw(gateway.port)
    assert reply(f)[0] == 220
    for cmd, want in [(b"MAIL FROM:<a@b.example>", 503), (b"EHLO c", 250), (b"RCPT TO:<u@example.test>", 503),
                      (b"DATA", 503), (b"XYZZY", 500), (b"MAIL FROM:<a@b.example> FOO=BAR", 555),
                      (b"MAIL FROM:<not an address>", 501), (b"QUIT", 221)]:
        s.sendall(cmd + b"\r\n")
        assert reply(f)[0] == want, cmd
    s.close()


def test_relay_denied_for_foreign_domain(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@sender.example")
        code, msg = c.rcpt("victim@elsewhere.example")
        assert code == 550 and b"5.7.1" in msg and b"Relay access denied" in msg
        assert c.rcpt("u@EXAMPLE.test")[0] == 250, "domains match case-insensitively"
    ev = wait_for(lambda: gateway.events("rcpt_rejected"), what="log line")
    assert ev[0]["rcpt"] == "victim@elsewhere.example"


def test_sender_routed_recipients_are_refused(make_gateway, sink):
    """Local parts that route elsewhere (percent hack, bang path, quoted address) are refused at
    a local domain, from any client; relay.allow_sender_routing = 1 lets them through."""
    g = make_gateway(sink.port)
    tricks = ["victim%elsewhere.example@example.test", "elsewhere.example!victim@example.test",
              '"victim@elsewhere.example"@example.test']
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@sender.example")
        for t in tricks:
            code, msg = c.rcpt(t)
            assert code == 550 and b"5.7.1" in msg and b"sender-specified routing" in msg, (t, msg)
        assert c.rcpt("plain.user+tag@example.test")[0] == 250
    g.sysctl("relay.allow_sender_routing=1")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@sender.example")
        assert [c.rcpt(t)[0] for t in tricks] == [250, 250, 250]
    ev = g.wait_events("rcpt_rejected", lambda e: e["reason"] == "sender-specified routing", n=3)
    assert {e["rcpt"] for e in ev} == set(tricks)


def test_pipelined_session_gets_replies_in_order(gateway, sink):
    s, f = raw(gateway.port)
    assert reply(f)[0] == 220
    s.sendall(b"EHLO c\r\n")
    reply(f)
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<y@other.example>\r\n"
              b"RCPT TO:<z@example.test>\r\nDATA\r\n")
    codes = [reply(f)[0] for _ in range(5)]
    assert codes == [250, 250, 550, 250, 354]
    s.sendall(b"Subject: pipelined\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
    assert reply(f)[0] == 250
    assert reply(f)[0] == 221
    s.close()
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    msg = sink.messages()[0]
    assert b"X-Sink-Rcpt-To: <x@example.test>" in msg and b"X-Sink-Rcpt-To: <z@example.test>" in msg
    assert b"\r\n.leading dot\r\n" in msg, "dot-unstuffed in, re-stuffed out"
    assert b"Received: from c ([127.0.0.1])\r\n\tby mx.example.test (mxguard) with ESMTP id " in msg


def test_starttls(gateway, sink):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        c.ehlo("c")
        assert c.starttls(context=ctx)[0] == 220
        code, text = c.ehlo("c")
        assert code == 250 and b"STARTTLS" not in text
        c.sendmail("a@sender.example", ["tls@example.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    msg = sink.messages()[0]
    assert b"with ESMTPS" in msg and b"(using TLSv1." in msg


def test_starttls_command_injection_is_discarded(gateway):
    s, f = raw(gateway.port)
    reply(f)
    s.sendall(b"EHLO c\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
    assert reply(f)[0] == 220
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname="mx.example.test")
    tf = t.makefile("rb")
    t.sendall(b"RCPT TO:<u@example.test>\r\n")
    code, _ = reply(tf)
    assert code == 503, "the injected MAIL FROM must not have run"
    t.close()


def test_implicit_tls(make_gateway, sink, tmp_path):
    from conftest import free_port
    tls_port = free_port()
    g = make_gateway(sink.port, {"smtp.tls_listen": f"127.0.0.1:{tls_port}"}, name="tls")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL("127.0.0.1", tls_port, context=ctx, timeout=10) as c:
        code, text = c.ehlo("c")
        assert code == 250 and b"STARTTLS" not in text
        c.sendmail("a@sender.example", ["smtps@example.test"], b"Subject: smtps\r\n\r\nx\r\n")
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    assert b"with ESMTPS" in sink.messages()[0]
    assert g.metrics()["mxguard_tls_handshakes_total"] >= 1


def test_bdat_chunking(gateway, sink):
    s, f = raw(gateway.port)
    reply(f)
    s.sendall(b"EHLO c\r\n")
    reply(f)
    body1 = b"Subject: chunked\r\n\r\nfirst "
    body2 = b"second\r\n.not stuffed\r\n"
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\n")
    assert [reply(f)[0], reply(f)[0]] == [250, 250]
    s.sendall(b"BDAT %d\r\n" % len(body1) + body1)
    assert reply(f)[0] == 250
    s.sendall(b"BDAT %d LAST\r\n" % len(body2) + body2)
    code, lines = reply(f)
    assert code == 250 and "queued as" in lines[-1]
    s.sendall(b"QUIT\r\n")
    s.close()
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    msg = sink.messages()[0]
    assert msg.endswith(b"Subject: chunked\r\n\r\nfirst second\r\n.not stuffed\r\n")


def test_size_limit(make_gateway, sink):
    g = make_gateway(sink.port, {"smtp.max_message_bytes": "10000"}, name="size")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.ehlo("c")
        assert b"SIZE 10000" in c.ehlo_resp
        code, msg = c.docmd("MAIL FROM:<a@sender.example> SIZE=20000")
        assert code == 552
        assert c.mail("a@sender.example")[0] == 250
        assert c.rcpt("u@example.test")[0] == 250
        code, msg = c.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 200)
        assert code == 552 and b"5.3.4" in msg
        c.rset()
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: small\r\n\r\nok\r\n")
    wait_for(lambda: sink.stats()["messages"] == 1, what="the small message")
    time.sleep(0.5)
    assert sink.stats()["messages"] == 1


def test_ten_megabyte_line(gateway, sink):
    s, f = raw(gateway.port, timeout=60)
    reply(f)
    s.sendall(b"EHLO c\r\n")
    reply(f)
    s.sendall(b"A" * (10 << 20) + b"\r\n")
    assert reply(f)[0] == 500
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
    assert [reply(f)[0] for _ in range(3)] == [250, 250, 354]
    s.sendall(b"Subject: long\r\n\r\n" + b"B" * (10 << 20) + b"\r\n.\r\n")
    code, lines = reply(f)
    assert code == 552, lines
    s.sendall(b"NOOP\r\n")
    assert reply(f)[0] == 250, "the session survives"
    s.close()
    time.sleep(0.5)
    assert sink.stats()["messages"] == 0


def test_bare_lf_smuggling_is_refused(gateway, sink):
    s, f = raw(gateway.port)
    reply(f)
    s.sendall(b"EHLO c\r\n")
    reply(f)
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
    assert [reply(f)[0] for _ in range(3)] == [250, 250, 354]
    s.sendall(b"Subject: smuggle\r\n\r\nhi\n.\nMAIL FROM:<ceo@bank.example>\r\nRCPT TO:<u@example.test>\r\n"
              b"DATA\r\nSubject: forged\r\n\r\nforged\r\n.\r\n")
    code, lines = reply(f)
    assert code == 550 and "bare <LF>" in lines[-1]
    assert f.readline() == b"", "the gateway hangs up after a bare-newline refusal"
    s.close()
    time.sleep(0.5)
    assert sink.stats()["messages"] == 0, "neither the message nor the smuggled one was relayed"
    assert gateway.metrics()['mxguard_messages_total{result="rejected"}'] == 1
    ev = wait_for(lambda: gateway.events("message_refused"), what="log line")
    assert ev[0]["from"] == "a@sender.example" and "bare <LF>" in ev[0]["reply"]


def test_smtputf8(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        c.ehlo("c")
        c.sendmail("jörg@sender.example", ["ünïcode@example.test"], "Subject: ü\r\n\r\nü\r\n".encode(),
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    assert "X-Sink-Rcpt-To: <ünïcode@example.test>".encode() in sink.messages()[0]


def test_too_many_errors_closes(make_gateway, sink):
    g = make_gateway(sink.port, {"smtp.max_errors": "3"}, name="errs")
    s, f = raw(g.port)
    reply(f)
    s.sendall(b"X\r\nY\r\nZ\r\n")
    codes = [reply(f)[0] for _ in range(4)]
    assert codes == [500, 500, 500, 421]
    assert f.readline() == b"", "connection closed"


def test_per_ip_connection_limit(make_gateway, sink):
    g = make_gateway(sink.port, {"smtp.max_connections_per_ip": "2"}, name="perip")
    socks = []
    for _ in range(2):
        s, f = raw(g.port)
        assert reply(f)[0] == 220
        socks.append(s)
    s, f = raw(g.port)
    code, lines = reply(f)
    assert code == 421 and "too many connections" in lines[0]
    for x in socks:
        x.close()
    time.sleep(0.3)
    s, f = raw(g.port)
    assert reply(f)[0] == 220, "slots are given back"


def test_slow_client_is_timed_out_without_slowing_others(make_gateway, sink):
    g = make_gateway(sink.port, {"smtp.read_timeout_s": "2", "smtp.data_timeout_s": "2"}, name="slow")
    slow, sf = raw(g.port, timeout=30)
    assert reply(sf)[0] == 220
    started = time.time()
    # One byte a second: each read succeeds, but the command never completes in time.
    closed_at = None
    for ch in b"EHLO slowpoke.example\r\n":
        try:
            slow.sendall(bytes([ch]))
        except OSError:
            break
        # Meanwhile a normal client is served at once.
        if ch == ord("L"):
            t0 = time.time()
            with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
                c.sendmail("a@sender.example", ["fast@example.test"], b"Subject: fast\r\n\r\nx\r\n")
            assert time.time() - t0 < 1.5, "a slow client must not delay others"
        time.sleep(1)
        if time.time() - started > 6:
            break
    code, lines = reply(sf)
    assert code == 421 and "timeout" in lines[0]
    assert time.time() - started < 8
    wait_for(lambda: sink.stats()["messages"] == 1, what="the fast client's message")


def test_slow_body_is_timed_out(make_gateway, sink):
    g = make_gateway(sink.port, {"smtp.data_timeout_s": "2", "smtp.min_data_rate_bps": "500"}, name="slowdata")
    s, f = raw(g.port, timeout=30)
    reply(f)
    s.sendall(b"EHLO c\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
    assert [reply(f)[0] for _ in range(4)][-1] == 354
    t0 = time.time()
    code = None
    for _ in range(10):
        try:
            s.sendall(b"x")
        except OSError:
            break
        time.sleep(1)
    code, lines = reply(f)
    assert code == 421 and time.time() - t0 < 8


def test_stalled_bodies_do_not_hold_the_admission_gate_shut(make_gateway, sink):
    # Each core admits 4 bodies at first (smtpd/admission.rs); an idle core then grows its limit,
    # but a busy one would not, and twelve senders that stop after DATA's 354 would hold its gate
    # shut for the whole data timeout were it not for smtp.body_pass_ms: a pass whose body stops
    # arriving stops counting. Here it is 1 ms, so every stalled pass expires long before the
    # limit could grow, and a normal sender still gets through at once.
    g = make_gateway(sink.port, {"smtp.busy_lag_us": "500", "smtp.body_pass_ms": "1", "smtp.data_timeout_s": "60",
                                 "smtp.min_data_rate_bps": "0"}, name="gate")
    stalled = []
    for _ in range(12):
        s, f = raw(g.port, timeout=10)
        reply(f)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
        stalled.append((s, f))
    t0 = time.time()
    for s, f in stalled:
        assert [reply(f)[0] for _ in range(4)] == [250, 250, 250, 354]
        s.sendall(b"Subject: stalled\r\n")
    assert time.time() - t0 < 5, "queued senders are admitted as the stalled passes expire"
    t0 = time.time()
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["fast@example.test"], b"Subject: fast\r\n\r\nx\r\n")
    assert time.time() - t0 < 2, "stalled bodies must not delay others"
    m = g.metrics()
    assert m["mxguard_smtp_body_passes_expired_total"] >= 8
    assert m["mxguard_smtp_body_limit"] > 0
    # The stalled ones still finish normally.
    for s, f in stalled:
        s.sendall(b"\r\nbody\r\n.\r\n")
        assert reply(f)[0] == 250
        s.close()
    wait_for(lambda: sink.stats()["messages"] == 13, what="all 13 messages")


def test_swaks_end_to_end(gateway, sink):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{gateway.port}", "--to", "swaks@example.test",
                        "--from", "a@sender.example", "--h-Subject", "from swaks", "--pipeline"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    assert b"Subject: from swaks" in sink.messages()[0]


def test_http_probe_is_refused(gateway):
    s, f = raw(gateway.port)
    reply(f)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    code, _ = reply(f)
    assert code == 221
    assert f.readline() == b""
