"""The policy stage end to end: a real client from a chosen loopback address, the real gateway,
the project's DNS server answering, and the sink (or nothing) downstream. Each test asserts the
SMTP reply, the symbol, the log line and where the message went."""

import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import MXGUARD, policy_knobs, raw, wait_for


def send(port, src, rcpts, mail_from="a@sender.example", subject="hello", helo="client.example"):
    """Sends one message from source address `src`; returns {rcpt: (code, text)} for refusals
    and the DATA reply, or raises for a refused connection."""
    c = smtplib.SMTP(timeout=15, source_address=(src, 0), local_hostname=helo)
    code, msg = c.connect("127.0.0.1", port)
    if code != 220:
        c.close()
        raise smtplib.SMTPConnectError(code, msg)
    try:
        refused = {}
        c.ehlo(helo)
        c.mail(mail_from)
        ok = []
        for r in rcpts:
            code, text = c.rcpt(r)
            if code >= 400:
                refused[r] = (code, text.decode())
            else:
                ok.append(r)
        data = None
        if ok:
            data = c.data(f"From: <{mail_from}>\r\nTo: <{ok[0]}>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
        return refused, data
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass


def zone_listing(dns, zone, ip, code="127.0.0.2"):
    o = ip.split(".")
    dns.zone(f"{o[3]}.{o[2]}.{o[1]}.{o[0]}.{zone}. 60 IN A {code}\n")


def test_dnsbl_listed_client_is_refused_at_rcpt_with_its_symbol(make_gateway, sink, dns):
    zone_listing(dns, "zen.test", "127.0.0.2")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="zen.test,true"))
    refused, data = send(g.port, "127.0.0.2", ["u@example.test"])
    code, text = refused["u@example.test"]
    assert code == 550 and "5.7.1" in text and "zen.test" in text and "127.0.0.2" in text, text
    ev = g.wait_events("rcpt_rejected")
    assert ev and "DNSBL_ZEN_TEST(15)" in ev[-1]["symbols"], ev
    # Queried reversed, as ',true' asks.
    assert dns.queried("2.0.0.127.zen.test")
    # Another client is not listed: accepted and explained in the headers.
    refused, data = send(g.port, "127.0.0.3", ["u@example.test"])
    assert not refused and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    msg = sink.messages()[0].decode()
    # hickory answers loopback PTRs itself (RFC 6761: "localhost"), which does not resolve back
    # to 127.0.0.3: not forward-confirmed.
    assert "X-mxguard-Score: 4\r\n" in msg and "RDNS_UNCONFIRMED(1)" in msg and "SENDER_NO_MX(3)" in msg, msg
    acc = g.events("accepted")[-1]
    assert "RDNS_UNCONFIRMED" in acc["symbols"] and acc["action"] == "deliver"


@pytest.mark.skipif(os.geteuid() != 0, reason="a private /etc/resolv.conf needs a mount namespace (root)")
def test_a_gateway_without_nameservers_starts_and_takes_them_when_resolv_conf_names_them(make_gateway, sink, tmp_path):
    """A node whose DHCP has not named DNS servers yet (the appliance's first seconds, or a lease
    without them): the gateway starts and says so, instead of exiting; once resolv.conf names a
    server, lookups go to it (a DNSBL listing refuses its client) without a restart."""
    from dnsserver import TestDns
    # resolv.conf names servers without a port: the test's server on port 53 of its own address.
    dns = TestDns(53, address="127.0.0.153")
    try:
        zone_listing(dns, "zen.test", "127.0.0.2")
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("# DHCP has not answered yet\nsearch example.test\n")
        knobs = policy_knobs(dns, dnsbl__servers="zen.test,true")
        knobs["dns.nameservers"] = ""
        g = make_gateway(sink.port, knobs, start=False)
        g.wrapper = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                     'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv)]
        g.start()
        assert g.wait_events("dns_no_nameservers")[-1]["source"] == "resolv.conf"
        assert not dns.queried("2.0.0.127.zen.test")
        # Same file, new contents (as a DHCP client rewrites it): picked up within seconds.
        resolv.write_text("nameserver 127.0.0.153\n")
        assert g.wait_events("dns_nameservers", timeout=15)[-1]["servers"] == "127.0.0.153"
        refused, _ = send(g.port, "127.0.0.2", ["u@example.test"])
        code, text = refused["u@example.test"]
        assert code == 550 and "zen.test" in text, text
    finally:
        dns.stop()


def test_dnsbl_minimum_matches(make_gateway, sink, dns):
    zone_listing(dns, "one.test", "127.0.0.2")
    zone_listing(dns, "two.test", "127.0.0.4")
    zone_listing(dns, "one.test", "127.0.0.4")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="one.test,true;two.test,true", dnsbl__min_matches="2"))
    refused, data = send(g.port, "127.0.0.2", ["u@example.test"])
    assert not refused and data[0] == 250, "one listing of two needed does not count"
    refused, _ = send(g.port, "127.0.0.4", ["u@example.test"])
    assert refused["u@example.test"][0] == 550
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    assert "DNSBL_ONE_TEST(0)" in sink.messages()[0].decode()


def test_dns_failure_is_not_a_listing(make_gateway, sink, dns):
    dns.servfail("2.0.0.127.bad.test")
    dns.drop("2.0.0.127.slow.test")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="bad.test,true;slow.test,true"))
    refused, data = send(g.port, "127.0.0.2", ["u@example.test"])
    assert not refused and data[0] == 250
    errs = [e["error"] for e in g.wait_events("dnsbl_error")]
    assert any("bad.test" in e for e in errs) and any("slow.test" in e for e in errs), errs


def test_lists_reject_discard_and_reload_atomically(make_gateway, sink, dns, tmp_path):
    # Several refusals of one client here: no bans in this test.
    g = make_gateway(sink.port, policy_knobs(dns, policy__ban_spam_count="0"), start=False)
    g.write_lists({
        "ip-blacklist.txt": "# test\n127.0.0.7\n",
        "domain-blacklist.txt": "null.example:NULL\n*.spam.example\n",
    })
    g.start()
    refused, _ = send(g.port, "127.0.0.7", ["u@example.test"])
    assert refused["u@example.test"][0] == 550 and "IP blacklist" in refused["u@example.test"][1]
    refused, _ = send(g.port, "127.0.0.8", ["u@example.test"], mail_from="x@a.spam.example")
    assert refused["u@example.test"][0] == 550
    refused, data = send(g.port, "127.0.0.8", ["u@example.test"], mail_from="x@null.example")
    assert not refused and data[0] == 250, ":NULL accepts"
    wait_for(lambda: g.events("discarded"), what="discard log line")
    assert "BL_DOMAIN" in g.events("discarded")[-1]["symbols"]
    # A bad line: reload refuses with file:line and the old lists stay in force.
    g.write_lists({"ip-blacklist.txt": "127.0.0.7\n10.0.0.0/99\n"})
    r = subprocess.run([str(MXGUARD), "reload", "--config", str(g.state / "test.conf")], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "ip-blacklist.txt:2:" in (r.stdout + r.stderr), r
    refused, _ = send(g.port, "127.0.0.7", ["u@example.test"])
    assert refused, "old list still in force"
    # A good change is picked up by the watcher without a command.
    g.write_lists({"ip-blacklist.txt": "127.0.0.9\n"})
    wait_for(lambda: not send(g.port, "127.0.0.7", ["u@example.test"])[0], timeout=10, what="reload on change")
    time.sleep(0.5)
    assert send(g.port, "127.0.0.9", ["u@example.test"])[0]
    assert sink.stats()["messages"] == 0 or all(b"null.example" not in m for m in sink.messages())


def test_honeypot_discards_and_bans_the_sender(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns), start=False)
    g.write_lists({
        "to-blacklist.txt": "trap@example.test:Honeypot\n",
        "domain-blacklist.txt": "trapdomain.example:Honeypot\n",
    })
    g.start()
    refused, data = send(g.port, "127.0.0.10", ["trap@example.test"])
    assert not refused and data[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as e:
        send(g.port, "127.0.0.10", ["u@example.test"])
    assert e.value.smtp_code == 554 and b"temporarily blocked" in e.value.smtp_error
    assert g.wait_events("ban", lambda b: b["why"] == "honeypot")
    # Other clients are unaffected.
    assert send(g.port, "127.0.0.11", ["u@example.test"])[1][0] == 250
    # A sender domain marked :Honeypot: the mail is taken, dropped, and its client banned.
    refused, data = send(g.port, "127.0.0.12", ["u@example.test"], mail_from="x@trapdomain.example")
    assert not refused and data[0] == 250
    with pytest.raises(smtplib.SMTPConnectError):
        send(g.port, "127.0.0.12", ["u@example.test"])
    assert [b["from"] for b in g.wait_events("ban", lambda b: b["client"] == "127.0.0.12")] == ["x@trapdomain.example"]
    wait_for(lambda: any("127.0.0.12" == d["client"] for d in g.events("discarded")), what="discard logged")
    wait_for(lambda: sink.stats()["messages"] == 1, what="the one good message")
    time.sleep(0.3)
    assert sink.stats()["messages"] == 1, "neither honeypot message was delivered"


def test_repeated_spam_bans_for_the_duration(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns), start=False)
    g.write_lists({"from-blacklist.txt": "bad@spammer.example\n"})
    g.start()
    for i in range(3):
        refused, _ = send(g.port, "127.0.0.12", ["u@example.test"], mail_from="bad@spammer.example")
        assert refused, i
    with pytest.raises(smtplib.SMTPConnectError):
        send(g.port, "127.0.0.12", ["u@example.test"])
    g.sysctl("policy.ban_duration_min=0")


def test_spf_results_score_and_can_reject(make_gateway, sink, dns):
    dns.zone('spf.example. 60 IN TXT "v=spf1 ip4:127.0.0.20 -all"\nspf.example. 60 IN MX 10 mx.spf.example.\n')
    g = make_gateway(sink.port, policy_knobs(dns, policy__spf_fail_score="100"))
    refused, _ = send(g.port, "127.0.0.21", ["u@example.test"], mail_from="x@spf.example")
    code, text = refused["u@example.test"]
    assert code == 550 and "SPF of spf.example does not allow 127.0.0.21" in text, text
    refused, data = send(g.port, "127.0.0.20", ["u@example.test"], mail_from="x@spf.example")
    assert not refused and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    m = sink.messages()[0].decode()
    assert "SPF_PASS(-1)" in m and "SENDER_NO_MX" not in m, m


def test_sender_without_mx_or_address_and_helo_checks(make_gateway, sink, dns):
    dns.zone("has-a.example. 60 IN A 192.0.2.1\n")
    g = make_gateway(sink.port, policy_knobs(dns))
    send(g.port, "127.0.0.30", ["u@example.test"], mail_from="x@nothing.example", helo="localhost")
    send(g.port, "127.0.0.30", ["u@example.test"], mail_from="x@has-a.example", helo="[127.0.0.30]")
    wait_for(lambda: sink.stats()["messages"] == 2, what="delivery")
    msgs = sorted(m.decode() for m in sink.messages())
    joined = "\n".join(msgs)
    assert joined.count("SENDER_NO_MX(3)") == 1 and "HELO_NOT_FQDN(1)" in joined
    assert "HELO_LITERAL_MISMATCH" not in joined


def test_unfiltered_recipient_gets_tagged_spam_others_refused(make_gateway, sink, dns):
    zone_listing(dns, "zen.test", "127.0.0.40")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="zen.test,true"), start=False)
    g.write_lists({"unfiltered.txt": "boss@example.test:TAGSUBJECT\n"})
    g.start()
    refused, data = send(g.port, "127.0.0.40", ["u@example.test", "boss@example.test"], subject="offer")
    assert list(refused) == ["u@example.test"] and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    m = sink.messages()[0].decode()
    assert "Subject: SPAM: offer" in m and "X-mxguard-Action: tag_subject" in m, m


def test_relay_percent_and_authorized_recipients(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, policy__dictionary_unknown_max="3"), start=False)
    g.write_lists({"authorized-to.txt": "u@example.test\n"})
    g.start()
    refused, data = send(g.port, "127.0.0.50", ["joe%other.example@example.test", "nobody@example.test", "u@example.test"])
    assert refused["nobody@example.test"][0] == 550 and "User unknown" in refused["nobody@example.test"][1]
    assert refused["joe%other.example@example.test"][0] == 550
    assert data[0] == 250
    # A dictionary attack bans the client.
    send(g.port, "127.0.0.51", ["a1@example.test", "a2@example.test", "a3@example.test"])
    with pytest.raises(smtplib.SMTPConnectError):
        send(g.port, "127.0.0.51", ["u@example.test"])


def quarantine_rows(g):
    """The held copies, the message's bytes as spooled (the store keeps them zlib-compressed)."""
    import sqlite3
    import zlib
    with sqlite3.connect(g.state / "quarantine.db") as db:
        rows = db.execute(
            "SELECT r.rcpt, r.state, m.qid, m.mail_from, m.client, m.subject, m.score, m.symbols, m.reason, m.message, m.compressed "
            "FROM recipients r JOIN messages m ON m.qid = r.qid ORDER BY r.rcpt").fetchall()
    return [r[:9] + ((zlib.decompress(r[9]) if r[10] else r[9]),) for r in rows]


def test_quarantine_score_holds_the_message_in_the_sqlite_table(make_gateway, sink, dns):
    # Listed (10) + sender without MX (3) + rDNS unconfirmed (1) = 14: between
    # verdict.quarantine_score (10) and verdict.reject_score (15).
    zone_listing(dns, "zen.test", "127.0.0.60")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="zen.test,true=10"), start=False)
    g.write_lists({"unfiltered.txt": "boss@example.test:TAG\n"})
    g.start()
    refused, data = send(g.port, "127.0.0.60", ["u@example.test", "v@example.test", "boss@example.test"],
                         mail_from="promo@sender.example", subject="cheap offer")
    assert not refused and data[0] == 250, (refused, data)
    wait_for(lambda: len(quarantine_rows(g)) == 2, what="quarantined recipients")
    rows = quarantine_rows(g)
    assert [r[0] for r in rows] == ["u@example.test", "v@example.test"]
    rcpt, state, qid, mail_from, client, subject, score, symbols, reason, message = rows[0]
    assert state == "held" and mail_from == "promo@sender.example" and client == "127.0.0.60"
    assert subject == "cheap offer" and score == 14 and "DNSBL_ZEN_TEST(10)" in symbols and "zen.test" in reason
    assert rows[1][2] == qid, "one copy of the message for both recipients"
    # The gateway's fields: the verdict, then its Received field, then the message as it came.
    head = message.split(b"\r\n\r\n")[0].split(b"\r\n")
    ours = next(i for i, h in enumerate(head) if h.startswith(b"Received: from "))
    assert b"X-mxguard-Score: 14" in head[:ours] and b"X-mxguard-Action: quarantine" in head[:ours], head
    assert all(h.startswith((b"X-mxguard-", b"Authentication-Results", b"\t", b" ")) for h in head[:ours]), head
    assert qid in data[1].decode(), "the queue id the client was given"
    # The unfiltered recipient gets it tagged; nobody gets the quarantined copy.
    wait_for(lambda: sink.stats()["messages"] == 1, what="tagged delivery")
    time.sleep(0.5)
    assert sink.stats()["messages"] == 1
    assert b"X-SF-SPAM: Y" in sink.messages()[0]
    ev = g.wait_events("quarantined")
    assert ev and ev[-1]["qid"] == qid and ev[-1]["rcpt"] == ["u@example.test", "v@example.test"]
    acc = [e for e in g.events("accepted") if e["qid"] == qid]
    assert acc and acc[0]["action"] == "quarantine" and "DNSBL_ZEN_TEST(10)" in acc[0]["symbols"]
    assert not g.events("quarantine_unavailable")


def test_quarantined_mail_survives_a_crash_and_is_held_once(make_gateway, sink, dns):
    zone_listing(dns, "zen.test", "127.0.0.61")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="zen.test,true=10", policy__ban_spam_count="0"))
    sent = 0
    for i in range(10):
        refused, data = send(g.port, "127.0.0.61", ["u@example.test"], subject=f"held {i}")
        assert data[0] == 250
        sent += 1
    g.kill9()  # wherever each message was (spool only, or spool and database), nothing is lost
    g.start()
    wait_for(lambda: len(quarantine_rows(g)) == sent, what="every message held")
    time.sleep(1.0)
    rows = quarantine_rows(g)
    assert sorted(r[5] for r in rows) == sorted(f"held {i}" for i in range(10)), "each once"
    assert sink.stats()["messages"] == 0


def test_greylisting_defers_then_passes_and_survives_restarts(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, greylist__enabled="1", greylist__delay_s="2", greylist__save_s="1",
                                             greylist__auto_whitelist="0"))
    refused, data = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="a@sender.example")
    code, text = refused["u@example.test"]
    assert code == 451 and "4.7.1" in text and "Greylisted" in text and data is None
    ev = g.wait_events("greylisted")
    assert ev[-1]["client"] == "127.0.0.70" and ev[-1]["first"] == "yes" and ev[-1]["rcpt"] == "u@example.test"
    refused, _ = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="a@sender.example")
    assert refused["u@example.test"][0] == 451, "a retry before the delay is deferred again"
    assert g.wait_events("greylisted", n=2)[-1]["first"] == "no"
    time.sleep(2.2)
    # The retry comes from another server of the same /24: the same triplet.
    refused, data = send(g.port, "127.0.0.71", ["u@example.test"], mail_from="a@sender.example")
    assert not refused and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery after greylisting")
    # Another sender is a new triplet. A clean stop saves the table; both triplets are remembered.
    refused, _ = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="b@sender.example")
    assert refused["u@example.test"][0] == 451
    g.stop()
    g.start()
    assert g.events("greylist_loaded")[-1]["triplets"] == 2
    refused, data = send(g.port, "127.0.0.72", ["u@example.test"], mail_from="a@sender.example")
    assert not refused and data[0] == 250, "a passed triplet passes after a restart"
    # b's first attempt was before the restart: once the delay is over it passes.
    time.sleep(2.2)
    refused, data = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="b@sender.example")
    assert not refused and data[0] == 250
    # A crash forgets at most greylist.save_s: a triplet older than that survives kill -9.
    refused, _ = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="c@sender.example")
    assert refused["u@example.test"][0] == 451
    time.sleep(2.5)
    g.kill9()
    g.start()
    refused, data = send(g.port, "127.0.0.70", ["u@example.test"], mail_from="c@sender.example")
    assert not refused and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 4, what="all four delivered")
    assert g.metrics()['mxguard_policy_events_total{kind="greylist_deferred"}'] == 0, "counters are per process"


def test_greylisting_auto_whitelists_a_network_that_retries(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, greylist__enabled="1", greylist__delay_s="1", greylist__auto_whitelist="2"))
    for who in ("a", "b"):
        refused, _ = send(g.port, "127.0.0.80", ["u@example.test"], mail_from=f"{who}@sender.example")
        assert refused["u@example.test"][0] == 451
    time.sleep(1.2)
    for who in ("a", "b"):
        refused, data = send(g.port, "127.0.0.80", ["u@example.test"], mail_from=f"{who}@sender.example")
        assert not refused and data[0] == 250
    # Two passes from 127.0.0.0/24: the network is whitelisted, a new sender is not delayed.
    refused, data = send(g.port, "127.0.0.81", ["v@example.test"], mail_from="new@other.example")
    assert not refused and data[0] == 250
    assert g.metrics()['mxguard_policy_events_total{kind="greylist_deferred"}'] == 2


def test_pregreet_talker_is_refused_and_a_patient_client_remembered(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, policy__pregreet_wait_ms="700"))
    # A bot that speaks at once.
    s, f = raw(g.port, src="127.0.0.90")
    s.sendall(b"EHLO bot.example\r\n")
    assert f.readline().startswith(b"220-mx.example.test")
    last = f.readline()
    assert last.startswith(b"554 5.5.1") and b"talked before the greeting" in last, last
    assert f.readline() == b"", "closed"
    ev = g.wait_events("pregreet")
    assert ev and ev[-1]["client"] == "127.0.0.90"
    assert g.wait_events("disconnect", lambda e: e["client"] == "127.0.0.90")[-1]["end"] == "pregreet"
    # A real client waits for the whole banner (smtplib reads the multi-line 220) and is served.
    started = time.time()
    refused, data = send(g.port, "127.0.0.91", ["u@example.test"])
    assert not refused and data[0] == 250 and time.time() - started >= 0.7
    # Remembered: the next connection gets the banner at once.
    s, f = raw(g.port, src="127.0.0.91")
    assert f.readline().startswith(b"220 mx.example.test"), "no wait for a client that passed"
    s.close()
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    assert g.metrics()['mxguard_policy_events_total{kind="pregreet_refused"}'] == 1


def test_connection_rate_per_ip_and_per_network(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, policy__conn_rate_per_ip="3", policy__conn_rate_per_net="5"))
    for _ in range(3):
        s, f = raw(g.port, src="127.0.0.95")
        assert f.readline().startswith(b"220 ")
        s.close()
    s, f = raw(g.port, src="127.0.0.95")
    line = f.readline()
    assert line.startswith(b"421 4.7.0") and b"too many connections from 127.0.0.95" in line, line
    # 127.0.0.0/24 has had 4 counted connections (the start-up probe from 127.0.0.1 and three from
    # .95; the refused one stopped at the per-IP limit): one more from a neighbour, then it is full.
    s, f = raw(g.port, src="127.0.0.96")
    assert f.readline().startswith(b"220 ")
    s.close()
    s, f = raw(g.port, src="127.0.0.97")
    line = f.readline()
    assert line.startswith(b"421 4.7.0") and b"your network 127.0.0.0/24" in line, line
    ev = g.wait_events("conn_rate", n=2)
    assert [e["per"] for e in ev] == ["ip", "network"] and ev[0]["connections"] == 4
    assert g.metrics()['mxguard_policy_events_total{kind="conn_rate_refused"}'] == 2


def write_country_db(path):
    """A small MaxMind DB of our own: two loopback pairs with a country each."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet
    w = MMDBWriter(ip_version=6, database_type="mxguard-test-country", ipv4_compatible=True)
    w.insert_network(IPSet(["127.0.0.100/31"]), {"country": {"iso_code": "CN"}})
    # Only a registered country (as for anycast and some hosting ranges), lower case.
    w.insert_network(IPSet(["127.0.0.102/31"]), {"registered_country": {"iso_code": "de"}})
    w.insert_network(IPSet(["127.0.0.104/31"]), {"country": {"iso_code": "US"}})
    w.to_db_file(str(path))


def test_country_blacklist_from_a_maxmind_db(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, country__db="geo.mmdb", country__blacklist="CN, de"), start=False)
    g.state.mkdir(parents=True)
    write_country_db(g.state / "geo.mmdb")
    g.start()
    assert g.events("country_db_loaded")[0]["about"].startswith("mxguard-test-country")
    for ip, cc in (("127.0.0.100", "CN"), ("127.0.0.103", "DE")):
        refused, data = send(g.port, ip, ["u@example.test"])
        code, text = refused["u@example.test"]
        assert code == 550 and f"{ip} is in {cc}, a blacklisted country" in text, text
    ev = g.wait_events("rcpt_rejected", lambda e: e["client"] == "127.0.0.100")
    assert "COUNTRY_BL(100)" in ev[0]["symbols"]
    # Not listed, and not in the database at all: accepted.
    for ip in ("127.0.0.104", "127.0.0.5"):
        refused, data = send(g.port, ip, ["u@example.test"])
        assert not refused and data[0] == 250
    # A damaged database on reload: refused, the old one stays in force.
    (g.state / "geo.mmdb").write_bytes(b"garbage")
    r = subprocess.run([str(MXGUARD), "reload", "--config", str(g.state / "test.conf")], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "country database not reloaded" in r.stdout + r.stderr, r
    assert send(g.port, "127.0.0.101", ["u@example.test"])[0], "still refused"
    # And at start: the gateway does not start on a damaged database, and says why.
    g.stop()
    p = subprocess.run([str(MXGUARD), "run", "--config", str(g.state / "test.conf")], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "country.db" in p.stderr and "geo.mmdb" in p.stderr, p.stderr


def test_per_domain_checks_thresholds_and_texts(make_gateway, sink, dns):
    zone_listing(dns, "zen.test", "127.0.0.110")
    g = make_gateway(sink.port, policy_knobs(dns, dnsbl__servers="zen.test,true", greylist__enabled="1",
                                             relay__domains="example.test, other.test, third.test"), start=False)
    (g.state / "lists").mkdir(parents=True)
    (g.state / "lists" / "domain-policy.txt").write_text(
        "# every domain: DNSBL refusals worded by the postmaster\n"
        "*            text.dnsbl               = 5.7.1 Mail from %IP% to %EMailTo% refused: %Reason%\n"
        "*            greylist                 = off\n"
        "other.test   dnsbl                    = off\n"
        "third.test   verdict.quarantine_score = 40\n"
        "third.test   verdict.reject_score     = 50\n"
        "third.test   verdict.tag_mode         = subject\n"
        "fourth.test  greylist                 = on\n")
    g.start()
    refused, data = send(g.port, "127.0.0.110", ["u@example.test", "v@other.test", "w@third.test"], subject="deal")
    code, text = refused["u@example.test"]
    assert code == 550 and text.startswith("5.7.1 Mail from 127.0.0.110 to u@example.test refused: 127.0.0.110 is listed in zen.test"), text
    assert list(refused) == ["u@example.test"] and data[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 2, what="two copies (plain, tagged)")
    by_rcpt = {}
    for m in sink.messages():
        for r in re.findall(rb"X-Sink-Rcpt-To: <([^>]+)>", m):
            by_rcpt[r.decode()] = m.decode()
    other, third = by_rcpt["v@other.test"], by_rcpt["w@third.test"]
    assert "DNSBL" not in other and "X-mxguard-Action: deliver" in other, "dnsbl is off for other.test"
    assert "Subject: SPAM: deal" in third and "DNSBL_ZEN_TEST(15)" in third, "third.test tags what others refuse"
    # Greylisting: off for every domain but fourth.test.
    g.stop()
    g.knobs["relay.domains"] += ", fourth.test"
    g.start()
    refused, data = send(g.port, "127.0.0.111", ["a@other.test", "b@fourth.test"])
    assert list(refused) == ["b@fourth.test"] and refused["b@fourth.test"][0] == 451 and data[0] == 250
    # A bad line keeps the old settings and says where.
    (g.state / "lists" / "domain-policy.txt").write_text("other.test dnsbl = sometimes\n")
    r = subprocess.run([str(MXGUARD), "reload", "--config", str(g.state / "test.conf")], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "domain-policy.txt:1:" in r.stdout + r.stderr
    refused, _ = send(g.port, "127.0.0.110", ["v@other.test"])
    assert not refused, "the old settings stay in force"
