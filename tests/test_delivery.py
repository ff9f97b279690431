"""Relaying and durability with real parts: mxblast and Postfix's smtp-sink downstream, retries,
DSNs, routes, restarts and kill -9."""

import re
import subprocess
import time
import signal
import smtplib

from conftest import Sink, blast, free_port, wait_for, wait_port


def seqs_in(sink, run):
    out = set()
    for m in sink.messages():
        g = re.search(rb"X-Mxblast-Seq: ([A-Za-z0-9]+)-(\d+)", m)
        if g and g.group(1).decode() == run:
            out.add(int(g.group(2)))
    return out


def test_thousand_messages_arrive_exactly_once(gateway, sink):
    r = blast(gateway.port, "-c", "20", "-m", "1000", "-s", "2048", "--run", "once")
    assert r["_rc"] == 0, r["_stderr"]
    assert r["ok"] == 1000, r
    wait_for(lambda: sink.stats()["unique_by_run"].get("once") == 1000, timeout=60, what="1000 deliveries")
    time.sleep(1)
    st = sink.stats()
    assert st["messages"] == 1000 and st["duplicates"] == 0, st
    assert seqs_in(sink, "once") == set(range(1000))
    m = gateway.metrics()
    assert m['mxguard_messages_total{result="accepted"}'] == 1000
    assert m['mxguard_deliveries_total{result="sent"}'] == 1000
    wait_for(lambda: gateway.metrics()["mxguard_queue_messages"] == 0, what="empty queue")
    # The spool is empty once everything is delivered.
    assert not list((gateway.state / "spool" / "queue").rglob("*.b"))
    accepted = gateway.events("accepted")
    delivered = gateway.events("delivered")
    assert len(accepted) == 1000 and len(delivered) == 1000
    assert {e["qid"] for e in accepted} == {e["qid"] for e in delivered}


def test_downstream_down_then_back(make_gateway, tmp_path):
    port = free_port()
    g = make_gateway(port, name="down")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        for i in range(5):
            c.sendmail("a@sender.example", [f"u{i}@example.test"], f"Subject: queued {i}\r\n\r\nx\r\n".encode())
    wait_for(lambda: len(g.events("deferred")) >= 5, what="deferrals")
    assert g.metrics()["mxguard_queue_messages"] == 5
    d = g.events("deferred")[0]
    assert "connect" in d["reason"] and d["attempts"] == 1
    # Each deferred message sits in a file of its own (a solo batch, or moved to deferred/).
    def spooled():
        return list((g.state / "spool" / "queue").rglob("*.b")) + list((g.state / "spool" / "deferred").glob("*.m"))
    wait_for(lambda: len(spooled()) == 5, what="one file per deferred message")
    sink = Sink(tmp_path, port=port).start()
    try:
        wait_for(lambda: sink.stats()["messages"] == 5, timeout=30, what="delivery after the downstream came back")
        wait_for(lambda: g.metrics()["mxguard_queue_messages"] == 0, what="empty queue")
        assert not spooled()
    finally:
        sink.stop()


def test_restart_delivers_what_the_spool_holds(make_gateway, tmp_path):
    port = free_port()
    g = make_gateway(port, name="restart")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        for i in range(20):
            c.sendmail("a@sender.example", ["u@example.test"], f"Subject: r{i}\r\n\r\nx\r\n".encode())
    g.stop()
    sink = Sink(tmp_path, port=port).start()
    try:
        time.sleep(0.5)
        assert sink.stats()["messages"] == 0, "nothing delivers while the gateway is stopped"
        g.start()
        wait_for(lambda: sink.stats()["messages"] == 20, timeout=30, what="delivery after restart")
        subjects = sorted(re.search(rb"Subject: (r\d+)", m).group(1) for m in sink.messages())
        assert subjects == sorted(f"r{i}".encode() for i in range(20))
        assert g.events("recovery")
    finally:
        sink.stop()


def test_downstream_5xx_sends_a_dsn_to_the_sender(make_gateway, tmp_path):
    sink = Sink(tmp_path, extra=["--reject-rcpt", "nosuchuser"]).start()
    try:
        g = make_gateway(sink.port, name="dsn")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("sender@remote.example", ["nosuchuser@example.test", "real@example.test"],
                       b"Subject: partly bounces\r\nMessage-ID: <orig@remote.example>\r\n\r\nbody text\r\n")
        wait_for(lambda: sink.stats()["messages"] == 2, timeout=30, what="message and DSN")
        msgs = sink.messages()
        dsn = [m for m in msgs if b"X-Sink-Mail-From: <>" in m]
        assert len(dsn) == 1
        d = dsn[0]
        assert b"X-Sink-Rcpt-To: <sender@remote.example>" in d
        assert b"Content-Type: multipart/report; report-type=delivery-status" in d
        assert b"Final-Recipient: rfc822; nosuchuser@example.test" in d
        assert b"Status: 5.1.1" in d
        assert b"Diagnostic-Code: smtp; 550 5.1.1" in d
        assert b"Message-ID: <orig@remote.example>" in d, "original headers are attached"
        assert b"body text" not in d, "the body is not"
        normal = [m for m in msgs if m not in dsn][0]
        assert b"X-Sink-Rcpt-To: <real@example.test>" in normal
        wait_for(lambda: g.metrics()["mxguard_queue_messages"] == 0, what="empty queue")
        b = g.events("bounced")
        assert len(b) == 1 and b[0]["rcpt"] == "nosuchuser@example.test"
        assert g.metrics()["mxguard_dsn_generated_total"] == 1
    finally:
        sink.stop()


def test_no_dsn_to_the_null_sender(make_gateway, tmp_path):
    sink = Sink(tmp_path, extra=["--reject-rcpt", "nosuchuser"]).start()
    try:
        g = make_gateway(sink.port, name="nulldsn")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("", ["nosuchuser@example.test"], b"Subject: a bounce\r\n\r\nx\r\n")
        wait_for(lambda: g.events("bounced"), what="bounce")
        time.sleep(1)
        assert sink.stats()["messages"] == 0
        assert g.metrics()["mxguard_dsn_generated_total"] == 0
        assert g.events("bounced")[0]["dsn"].startswith("none")
    finally:
        sink.stop()


def test_queue_on_5xx_keeps_the_message(make_gateway, tmp_path):
    port = free_port()
    first = Sink(tmp_path, port=port, extra=["--reject-rcpt", "picky"]).start()
    g = make_gateway(port, {"relay.queue_on_5xx": "1"}, name="q5xx")
    try:
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["picky@example.test"], b"Subject: held\r\n\r\nx\r\n")
        wait_for(lambda: g.events("deferred"), what="deferral of a 5xx")
        assert not g.events("bounced")
    finally:
        first.stop()
    second = Sink(tmp_path / "2", port=port).start()
    try:
        wait_for(lambda: second.stats()["messages"] == 1, timeout=30, what="retry after the 5xx")
    finally:
        second.stop()


def test_4xx_is_retried_until_accepted(make_gateway, tmp_path):
    port = free_port()
    first = Sink(tmp_path, port=port, extra=["--defer-rcpt", "busy"]).start()
    g = make_gateway(port, name="retry4xx")
    try:
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["busy@example.test"], b"Subject: later\r\n\r\nx\r\n")
        wait_for(lambda: len(g.events("deferred")) >= 2, timeout=30, what="two attempts")
        assert "451 4.3.0" in g.events("deferred")[0]["reason"]
    finally:
        first.stop()
    second = Sink(tmp_path / "2", port=port).start()
    try:
        wait_for(lambda: second.stats()["messages"] == 1, timeout=30, what="delivery")
    finally:
        second.stop()


def test_queue_on_4xx_off_bounces_at_once(make_gateway, tmp_path):
    sink = Sink(tmp_path, extra=["--defer-rcpt", "busy"]).start()
    try:
        g = make_gateway(sink.port, {"relay.queue_on_4xx": "0"}, name="no4xx")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["busy@example.test"], b"Subject: now\r\n\r\nx\r\n")
        wait_for(lambda: sink.stats()["messages"] == 1, what="the DSN")
        assert b"Status: 4.3.0" in sink.messages()[0]
        assert not g.events("deferred")
    finally:
        sink.stop()


def test_per_domain_routes(make_gateway, tmp_path):
    default = Sink(tmp_path / "a").start()
    other = Sink(tmp_path / "b").start()
    try:
        domains_file = tmp_path / "domains.txt"
        domains_file.write_text(f"# reference syntax\nfiled.example:127.0.0.1:{other.port}\n")
        g = make_gateway(default.port, {"relay.domains": f"example.test, routed.example:127.0.0.1:{other.port}",
                                        "relay.domains_file": str(domains_file)}, name="routes")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["x@example.test", "y@routed.example", "z@filed.example"],
                       b"Subject: split\r\n\r\nx\r\n")
        wait_for(lambda: default.stats()["messages"] == 1 and other.stats()["messages"] == 1, what="split delivery")
        assert b"X-Sink-Rcpt-To: <x@example.test>" in default.messages()[0]
        o = other.messages()[0]
        assert b"<y@routed.example>" in o and b"<z@filed.example>" in o
        # The file is re-read when it changes.
        time.sleep(1.1)
        domains_file.write_text(f"filed.example:127.0.0.1:{other.port}\nlate.example\n")
        def accepted_late():
            with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
                c.ehlo("c")
                c.mail("a@sender.example")
                return c.rcpt("n@late.example")[0] == 250
        wait_for(accepted_late, timeout=10, what="the new domain")
    finally:
        default.stop()
        other.stop()


def test_postfix_smtp_sink_downstream(make_gateway, tmp_path):
    port = free_port()
    proc = subprocess.Popen(["smtp-sink", "-u", "root", f"127.0.0.1:{port}", "100"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        g = make_gateway(port, name="pfsink")
        r = blast(g.port, "-c", "10", "-m", "300", "--run", "pf")
        assert r["ok"] == 300, r
        wait_for(lambda: g.metrics()['mxguard_deliveries_total{result="sent"}'] == 300, timeout=60,
                 what="300 deliveries to smtp-sink")
        assert g.metrics()["mxguard_relay_connections_total"] <= 40, "connections are reused"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_kill_9_during_blast_loses_nothing_acknowledged(make_gateway, sink, tmp_path):
    g = make_gateway(sink.port, name="crash")
    accepted_file = tmp_path / "accepted.txt"
    out = tmp_path / "blast.json"
    b = subprocess.Popen([str(__import__("conftest").MXBLAST), "send", "--server", f"127.0.0.1:{g.port}", "-c", "20",
                          "-m", "2000", "-s", "4096", "--run", "crash", "--per-conn", "20", "--accepted",
                          str(accepted_file), "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(g.events("accepted")) >= 300, timeout=60, what="some traffic")
    g.kill9()
    time.sleep(0.5)
    g.start()
    b.wait(180)
    acked = {int(x) for x in accepted_file.read_text().split()}
    assert 500 <= len(acked) <= 2000, len(acked)
    wait_for(lambda: acked <= seqs_in(sink, "crash"), timeout=60, what="every acknowledged message at the sink")
    missing = acked - seqs_in(sink, "crash")
    assert not missing, f"{len(missing)} acknowledged messages lost"
    wait_for(lambda: g.metrics()["mxguard_queue_messages"] == 0, timeout=30, what="empty queue")


def test_opportunistic_starttls_to_downstream(make_gateway, tmp_path):
    sink = Sink(tmp_path, extra=["--tls"]).start()
    try:
        # No idle reuse: the knob change below applies to new connections only.
        g = make_gateway(sink.port, {"relay.conn_idle_s": "0"}, name="relaytls")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["u@example.test"], b"Subject: encrypted hop\r\n\r\nx\r\n")
        wait_for(lambda: sink.stats()["messages"] == 1, what="delivery over TLS")
        assert g.events("delivered")[0]["tls"] == "yes", "self-signed certificate accepted, not verified"
        g.sysctl("relay.starttls=0")
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail("a@sender.example", ["u@example.test"], b"Subject: plain hop\r\n\r\nx\r\n")
        wait_for(lambda: sink.stats()["messages"] == 2, what="delivery in plaintext")
        assert g.events("delivered")[1]["tls"] == "no"
    finally:
        sink.stop()


def test_destination_concurrency_limit(make_gateway, tmp_path):
    sink = Sink(tmp_path).start()
    try:
        g = make_gateway(sink.port, {"relay.dest_concurrency": "2"}, name="conc")
        r = blast(g.port, "-c", "20", "-m", "400", "--run", "conc")
        assert r["ok"] == 400, r
        wait_for(lambda: sink.stats()["unique_by_run"].get("conc") == 400, timeout=60, what="deliveries")
        # Two cores, a limit of 2 for the destination: one connection per core at a time, reused.
        assert g.metrics()["mxguard_relay_connections_total"] <= 2 * 2 * 4 + 2
    finally:
        sink.stop()
