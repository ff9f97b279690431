"""Absurd input through the policy stage (every check on, the project's DNS answering): a
10,000-recipient session, a 1 MB HELO, garbage list files. Each gets a clear reply or error and
the gateway stays up; nothing accepted is lost."""

import re
import time

from conftest import policy_knobs, raw, reply, wait_for


def session(port, src="127.0.0.120"):
    return raw(port, timeout=60, src=src)


def many_rcpts(s, f, n):
    """Pipelines MAIL and `n` RCPTs; the replies to the RCPTs (until the server hangs up)."""
    cmds = [b"MAIL FROM:<bulk@sender.example>\r\n"] + [f"RCPT TO:<user{i}@example.test>\r\n".encode() for i in range(n)]
    s.sendall(b"".join(cmds))
    assert reply(f)[0] == 250
    out = []
    try:
        for _ in range(n):
            out.append(reply(f))
    except EOFError:
        pass
    return out


def test_ten_thousand_recipients_with_default_limits_get_a_clear_end(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns))
    s, f = session(g.port)
    assert reply(f)[0] == 220
    s.sendall(b"EHLO client.example\r\n")
    reply(f)
    codes = many_rcpts(s, f, 10_000)
    # 1,000 recipients (smtp.max_recipients) pass every check; the next ones get 452 4.5.3 until
    # smtp.max_commands (10,000, EHLO and MAIL included) ends the session with 421. Nothing was
    # acknowledged, nothing is lost.
    assert [c for c, _ in codes[:1000]] == [250] * 1000
    assert all(c == 452 and "4.5.3" in l[0] for c, l in codes[1000:-1])
    assert codes[-1][0] == 421 and "too many commands" in codes[-1][1][0] and len(codes) == 9999
    assert f.readline() == b""
    s2, f2 = session(g.port)
    assert reply(f2)[0] == 220, "the gateway goes on"
    s2.close()


def test_ten_thousand_recipients_through_every_check(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, smtp__max_recipients="10000", smtp__max_commands="30000",
                                             smtp__max_errors="20000", greylist__enabled="1", greylist__delay_s="0"))
    s, f = session(g.port)
    assert reply(f)[0] == 220
    s.sendall(b"EHLO client.example\r\n")
    reply(f)
    codes = many_rcpts(s, f, 10_000)
    assert {c for c, _ in codes} == {451}, "each new triplet is greylisted once"
    s.sendall(b"RSET\r\n")
    assert reply(f)[0] == 250
    codes = many_rcpts(s, f, 10_000)
    assert [c for c, _ in codes] == [250] * 10_000
    s.sendall(b"DATA\r\n")
    assert reply(f)[0] == 354
    s.sendall(b"Subject: many\r\n\r\nhello\r\n.\r\n")
    code, lines = reply(f)
    assert code == 250, lines
    s.sendall(b"QUIT\r\n")
    reply(f)
    s.close()
    wait_for(lambda: sum(len(re.findall(rb"X-Sink-Rcpt-To:", m)) for m in sink.messages()) == 10_000,
             timeout=60, what="every recipient delivered")


def test_one_megabyte_helo_and_commands(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, smtp__max_command_line_bytes="1048576"))
    s, f = session(g.port)
    assert reply(f)[0] == 220
    # Within the line limit, but no host name is 1 MB long.
    s.sendall(b"EHLO " + b"a" * 1_000_000 + b"\r\n")
    code, lines = reply(f)
    assert code == 501 and "at most 255" in lines[0]
    # Over the line limit: refused as too long, and the session goes on.
    s.sendall(b"HELO " + b"b" * 1_100_000 + b"\r\n")
    code, lines = reply(f)
    assert code == 500 and "5.5.2" in lines[0]
    s.sendall(b"EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
    assert [reply(f)[0] for _ in range(4)] == [250, 250, 250, 354]
    s.sendall(b"Subject: after the garbage\r\n\r\nok\r\n.\r\nQUIT\r\n")
    assert reply(f)[0] == 250
    s.close()
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    # Nothing of the garbage reached the log.
    assert max(len(l) for l in g.log_file.read_text().splitlines()) < 10_000


def test_garbage_list_files_never_take_the_gateway_down(make_gateway, sink, dns):
    g = make_gateway(sink.port, policy_knobs(dns, policy__ban_spam_count="0"), start=False)
    lists = g.state / "lists"
    lists.mkdir(parents=True)
    (lists / "ip-blacklist.txt").write_text("127.0.0.121\n")
    g.start()
    s, f = session(g.port, "127.0.0.121")
    reply(f)
    s.sendall(b"EHLO c.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\n")
    assert [reply(f)[0] for _ in range(3)] == [250, 250, 550]
    s.close()
    # Binary garbage, a 2 MB line, a regex hyperscan cannot compile, a bad CIDR: each one is
    # refused with file:line and the previous lists stay.
    for junk in (bytes(range(256)) * 10, b"x" * 2_000_000 + b"\n", b"(a{99999}\n", b"10.0.0.0/40\n"):
        (lists / "ip-blacklist.txt").write_bytes(b"127.0.0.121\n" + junk)
        time.sleep(1.2)
        s, f = session(g.port, "127.0.0.121")
        assert reply(f)[0] == 220, "still serving"
        s.sendall(b"EHLO c.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n")
        assert [reply(f)[0] for _ in range(4)] == [250, 250, 550, 221]
        s.close()
    # Each change is reported once (not at every check): the binary file and the bad CIDR are
    # refused with file:line; the long line and the repeat compile as (useless) entries.
    errors = g.wait_events("lists_error", n=2)
    assert all("ip-blacklist.txt:" in e["error"] for e in errors), errors
    assert "not UTF-8" in errors[0]["error"] and "prefix length" in errors[-1]["error"], errors
