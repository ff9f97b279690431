"""The console's JSON API and admin operations end to end against the real gateway: a superadmin
token made on the command line provisions domain admins, a subadmin and users; each token sees
and changes only what its account may (another domain's copy or account is a 404, never a 403);
knobs are read by admins and changed by the superadmin only (live, and kept for the next start);
domain admins change their own domains' filter settings and lists; releases through the API reach
the downstream server. Then two gateways sharing one PostgreSQL quarantine and console database:
what one holds the other's console releases, an allow list made on one is in force on the other,
and a PostgreSQL outage delays quarantining without losing a message."""

import http.client
import json
import smtplib
import ssl
import time

from conftest import wait_for
from test_console import cli, with_keyword_list
from test_content import accepted_symbols, knobs, message, send


def api(port, method, path, token=None, body=None, cookie=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=15, context=ssl._create_unverified_context())
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    c.request(method, "/api/v1" + path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


def test_tokens_act_with_their_accounts_rights_only(make_gateway, sink):
    g = with_keyword_list(make_gateway(sink.port, knobs(relay__domains="example.test,other.test", verdict__reject_score="0"), start=False))
    p = g.console_port
    cli(g, "add", "root@isp.test", "--role", "superadmin", password="root's long password")
    root = cli(g, "token", "root@isp.test", "--label", "provisioning")
    assert root.startswith("mxg_")
    assert api(p, "GET", "/me", root) == (200, {"email": "root@isp.test", "role": "superadmin", "domains": [], "members": []})
    # No token, a bad one, or the session cookie instead: refused.
    assert api(p, "GET", "/quarantine")[0] == 401
    assert api(p, "GET", "/quarantine", root[:-1] + ("0" if root[-1] != "0" else "1"))[0] == 401
    assert api(p, "GET", "/quarantine", cookie="mxg_session=whatever")[0] == 401

    # Provisioning through the API.
    for acct in ({"email": "admin@example.test", "role": "domain-admin", "domains": ["example.test"], "password": "example admin pw"},
                 {"email": "admin@other.test", "role": "domain-admin", "domains": ["other.test"], "password": "other admin pw"},
                 {"email": "sub@example.test", "role": "subadmin", "domains": ["example.test"], "members": ["ann@example.test"], "password": "subadmin pw!"},
                 {"email": "ann@example.test", "role": "user", "password": "ann's long password"}):
        assert api(p, "POST", "/accounts", root, acct) == (200, {"done": True}), acct
    tok = {}
    for who in ("admin@example.test", "admin@other.test", "sub@example.test", "ann@example.test"):
        status, body = api(p, "POST", "/tokens", root, {"account": who, "label": "test"})
        assert status == 200, body
        tok[who] = body["token"]
    a, b, sub, ann = tok["admin@example.test"], tok["admin@other.test"], tok["sub@example.test"], tok["ann@example.test"]

    bank = message(subject="Your account is locked", mime="MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
                   "<p>cheap meds and your account</p><img src=\"http://127.0.0.1:9/p.gif\"><script>x()</script>\r\n")
    assert send(g.port, bank, rcpts=("ann@example.test", "bob@example.test"))[0] == 250
    assert send(g.port, message(subject="for carol", body="cheap meds for carol\r\n"), rcpts=("carol@other.test",))[0] == 250
    wait_for(lambda: len(api(p, "GET", "/quarantine", root)[1]) == 3, what="three held copies")
    rcpts = lambda token, q="": sorted(h["rcpt"] for h in api(p, "GET", "/quarantine" + q, token)[1])
    assert rcpts(a) == ["ann@example.test", "bob@example.test"]
    assert rcpts(b) == ["carol@other.test"]
    assert rcpts(sub) == ["ann@example.test"], "a subadmin sees their users only"
    assert rcpts(ann) == ["ann@example.test"]
    # Searches: by subject words, sender domain, kind; the scope stays the token's.
    assert rcpts(root, "?subject=account+is") == ["ann@example.test", "bob@example.test"]
    assert rcpts(b, "?subject=account+is") == []
    assert rcpts(a, "?sender=%40sender.example&verdict=spam&rcpt=bob%40example.test") == ["bob@example.test"]
    assert rcpts(a, "?verdict=virus") == []
    carol = api(p, "GET", "/quarantine", b)[1][0]
    bob = next(h for h in api(p, "GET", "/quarantine", a)[1] if h["rcpt"] == "bob@example.test")
    # Its HTML, cleaned as the console shows it.
    bob_copy = api(p, "GET", f"/quarantine/{bob['id']}", a)[1]
    assert "<p>cheap meds and your account</p>" in bob_copy["html"] and "127.0.0.1:9" not in bob_copy["html"], bob_copy["html"]
    assert "script" not in bob_copy["html"] and bob_copy["remote_images_removed"] == 1
    # Another domain's copy does not exist for A, by id, to read or to release.
    assert api(p, "GET", f"/quarantine/{carol['id']}", a)[0] == 404
    assert api(p, "POST", f"/quarantine/{carol['id']}/release", a)[0] == 404
    assert api(p, "POST", f"/quarantine/{bob['id']}/delete", sub)[0] == 404, "bob is not the subadmin's"
    carol_copy = api(p, "GET", f"/quarantine/{carol['id']}", b)[1]
    assert "cheap meds for carol" in carol_copy["text"] and carol_copy["html"] is None, "a text-only message has no HTML"
    assert sink.stats()["messages"] == 0

    # A releases bob's copy: it reaches the sink, and the sender is on bob's allow list.
    assert api(p, "POST", f"/quarantine/{bob['id']}/release", a)[0] == 200
    wait_for(lambda: sink.stats()["messages"] == 1, what="the released copy at the sink")
    assert api(p, "POST", f"/quarantine/{bob['id']}/release", a)[0] == 400, "released once"
    assert api(p, "GET", "/lists?owner=bob%40example.test", a)[1] == [{"sender": "ann@sender.example", "kind": "allow"}]
    assert api(p, "GET", "/lists?owner=bob%40example.test", b)[0] == 404

    # Accounts: each admin manages their own domains' only.
    assert api(p, "POST", "/accounts", a, {"email": "dave@example.test", "role": "user", "password": "dave's password"})[0] == 200
    assert api(p, "POST", "/accounts", a, {"email": "eve@other.test", "role": "user", "password": "eve's password!"})[0] == 403
    assert api(p, "POST", "/accounts", a, {"email": "a2@isp.test", "role": "superadmin", "password": "long password"})[0] == 403
    assert api(p, "POST", "/accounts", a, {"email": "admin@other.test", "role": "domain-admin", "domains": ["example.test"], "password": "takeover pw"})[0] == 403
    assert api(p, "POST", "/accounts", sub, {"email": "x@example.test", "role": "user", "password": "long password"})[0] == 403
    assert "dave@example.test" not in [x["email"] for x in api(p, "GET", "/accounts", b)[1]]
    assert sorted(x["email"] for x in api(p, "GET", "/accounts", a)[1]) == ["admin@example.test", "ann@example.test", "dave@example.test", "sub@example.test"]
    assert api(p, "DELETE", "/accounts/admin@other.test", a)[0] == 404
    assert api(p, "POST", "/tokens", a, {"account": "admin@other.test"})[0] == 404, "no tokens for others' accounts"
    # A token dies with its account.
    dave = api(p, "POST", "/tokens", a, {"account": "dave@example.test"})[1]["token"]
    assert api(p, "GET", "/me", dave)[0] == 200
    assert api(p, "DELETE", "/accounts/dave@example.test", a)[0] == 200
    assert api(p, "GET", "/me", dave)[0] == 401

    # Knobs: admins read them, only the superadmin changes a live one (kept for the next start).
    assert any(k["name"] == "console.login_failures" for k in api(p, "GET", "/knobs", a)[1])
    assert api(p, "GET", "/knobs", ann)[0] == 403
    assert api(p, "POST", "/knobs/console.login_failures", a, {"value": "9"})[0] == 403
    assert api(p, "POST", "/knobs/console.login_failures", root, {"value": "many"})[0] == 400
    assert api(p, "POST", "/knobs/smtp.listen", root, {"value": "127.0.0.1:1"})[0] == 400, "restart-only knobs are not changed live"
    assert api(p, "POST", "/knobs/console.login_failures", root, {"value": 9})[0] == 200
    assert g.sysctl("console.login_failures").stdout.strip().endswith("9")
    assert "console.login_failures = 9" in (g.state / "console-knobs.conf").read_text()

    # Per-domain settings: A's domain only, checked by the gateway's own parser.
    assert [d["domain"] for d in api(p, "GET", "/domains", a)[1]] == ["example.test"]
    assert api(p, "POST", "/domains/other.test", a, {"setting": "greylist", "value": "off"})[0] == 404
    assert api(p, "POST", "/domains/example.test", a, {"setting": "no_such_check", "value": "off"})[0] == 400
    assert api(p, "POST", "/domains/example.test", a, {"setting": "keywords", "value": "off"})[0] == 200
    assert "keywords" in (g.state / "lists" / "domain-policy.txt").read_text()
    assert api(p, "GET", "/domains", a)[1][0]["settings"] == [{"setting": "keywords", "value": "off"}]
    # In force within the list watcher's reload: keyword spam to example.test is now delivered,
    # to other.test still held.
    def passes():
        n, h = sink.stats()["messages"], len(api(p, "GET", "/quarantine?subject=meds+again", root)[1])
        assert send(g.port, message(subject="meds again", body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
        wait_for(lambda: sink.stats()["messages"] > n or len(api(p, "GET", "/quarantine?subject=meds+again", root)[1]) > h,
                 what="the next message handled")
        return sink.stats()["messages"] > n
    deadline = time.time() + 15
    while not passes():
        assert time.time() < deadline, "the domain setting never took effect"
        time.sleep(1)

    # A domain-wide block list entry, kept by A: a sender blocked for every example.test user.
    assert api(p, "POST", "/lists", a, {"owner": "@example.test", "sender": "@sender.example", "kind": "block"})[0] == 200
    assert api(p, "POST", "/lists", b, {"owner": "@example.test", "sender": "@x.example", "kind": "block"})[0] == 404
    assert send(g.port, message(subject="hello carl"), rcpts=("carl@example.test",))[0] == 250
    wait_for(lambda: any(h["rcpt"] == "carl@example.test" for h in api(p, "GET", "/quarantine", a)[1]), what="blocked sender held")
    assert "USER_BLOCK" in accepted_symbols(g)[-1]

    # Bad tokens are throttled like bad passwords.
    codes = [api(p, "GET", "/me", "mxg_guess_" + str(i))[0] for i in range(10)]
    assert 429 in codes, codes


def test_two_gateways_share_one_postgresql_quarantine(make_gateway, sink, postgres_server):
    import postgres
    url, pg_root = postgres_server
    shared = knobs(quarantine__db=url, console__db=url, verdict__reject_score="0", console__lists_refresh_s="1")
    g1 = with_keyword_list(make_gateway(sink.port, shared, name="gw1", start=False))
    g2 = with_keyword_list(make_gateway(sink.port, shared, name="gw2", start=False))
    db = ("--set", f"console.db={url}")
    cli(g1, "add", "root@isp.test", "--role", "superadmin", password="root's long password", extra=db)
    root = cli(g2, "token", "root@isp.test", extra=db)

    assert send(g1.port, message(subject="held on one", body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
    held = lambda g: api(g.console_port, "GET", "/quarantine", root)[1]
    wait_for(lambda: len(held(g2)) == 1, what="gw1's held copy in gw2's console")
    copy = held(g2)[0]
    assert copy["subject"] == "held on one" and copy["verdict"] == "spam"
    assert postgres.psql(url, "SELECT compressed FROM messages").strip() == "1"
    # Released on both gateways at once (admins clicking together): one release wins, the message
    # is delivered once, and it is marked for everyone.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        codes = sorted(pool.map(lambda g: api(g.console_port, "POST", f"/quarantine/{copy['id']}/release", root)[0], (g1, g2) * 8))
    assert codes == [200] + [400] * 15, codes
    wait_for(lambda: sink.stats()["messages"] == 1, what="the release")
    assert held(g1)[0]["state"] == "released"
    time.sleep(1)
    assert sink.stats()["messages"] == 1 and len(g1.events("quarantine_released") + g2.events("quarantine_released")) == 1
    assert api(g1.console_port, "POST", f"/quarantine/{copy['id']}/release", root)[0] == 400, "not twice, whichever gateway"
    # The sender is allowed for ann on gw1 too (its console rereads the shared lists).
    def allowed_on_gw1():
        n, h = sink.stats()["messages"], len(held(g1))
        assert send(g1.port, message(subject="again", body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
        wait_for(lambda: sink.stats()["messages"] > n or len(held(g1)) > h, what="handled")
        return sink.stats()["messages"] > n
    deadline = time.time() + 15
    while not allowed_on_gw1():
        assert time.time() < deadline, "gw1 never saw the allow list made on gw2"
        time.sleep(1)
    assert "USER_ALLOW" in accepted_symbols(g1)[-1]

    # PostgreSQL goes away: mail is still accepted (spooled), retried, and held once it is back.
    before = len(held(g2))
    postgres.pause(pg_root)
    try:
        assert send(g1.port, message(subject="during the outage", body="cheap meds\r\n"), rcpts=("bob@example.test",))[0] == 250
        g1.wait_events("deferred", pred=lambda e: e["rcpt"] == "bob@example.test", timeout=20)
    finally:
        postgres.resume(pg_root)
    wait_for(lambda: len(held(g2)) == before + 1, timeout=30, what="the message held once PostgreSQL is back")
    assert sum(1 for h in held(g2) if h["subject"] == "during the outage") == 1
    assert not any(b"during the outage" in m for m in sink.messages()), "held, not delivered"


FAIL_RELEASE_MARK = """
CREATE FUNCTION fail_release_mark() RETURNS trigger AS $$
BEGIN
  IF NEW.state = 'released' THEN RAISE EXCEPTION 'injected: the database went away'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER fail_release_mark BEFORE UPDATE ON recipients FOR EACH ROW EXECUTE FUNCTION fail_release_mark();
"""


def test_release_whose_mark_fails_is_marked_later_and_never_sent_twice(make_gateway, sink, postgres_server):
    """The release crash window: the message is spooled again, then the database fails at the
    copy's "released" mark (a PostgreSQL trigger refuses it, as a killed server would), and the
    gateway is killed before the database is back. The copy is kept in state.dir/release-marks and
    marked once the database takes it again (after the restart); it is never released twice."""
    import postgres
    url, _ = postgres_server
    g = with_keyword_list(make_gateway(sink.port, knobs(quarantine__db=url, console__db=url, verdict__reject_score="0"),
                                       name="marks", start=False))
    cli(g, "add", "root@isp.test", "--role", "superadmin", password="root's long password", extra=("--set", f"console.db={url}"))
    root = cli(g, "token", "root@isp.test", extra=("--set", f"console.db={url}"))
    assert send(g.port, message(subject="held", body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
    held = lambda: api(g.console_port, "GET", "/quarantine", root)[1]
    wait_for(lambda: len(held()) == 1, what="the held copy")
    copy = held()[0]
    state = lambda: postgres.psql(url, f"SELECT state FROM recipients WHERE id = {copy['id']}").strip()
    postgres.psql(url, FAIL_RELEASE_MARK)
    try:
        code, _ = api(g.console_port, "POST", f"/quarantine/{copy['id']}/release", root)
        assert code == 200, "the message is on its way"
        wait_for(lambda: sink.stats()["messages"] == 1, what="the released message")
        assert state() == "releasing"
        marks = g.state / "release-marks"
        assert marks.read_text().split()[0] == str(copy["id"])
        g.kill9()
        g.start()
        time.sleep(4)
        assert state() == "releasing" and marks.read_text().strip(), "still waiting for the database"
    finally:
        postgres.psql(url, "DROP TRIGGER fail_release_mark ON recipients; DROP FUNCTION fail_release_mark();")
    wait_for(lambda: state() == "released", timeout=20, what="the late mark")
    wait_for(lambda: marks.read_text() == "", what="the marks file emptied")
    assert g.wait_events("quarantine_release_marked")[0]["id"] == copy["id"]
    assert api(g.console_port, "POST", f"/quarantine/{copy['id']}/release", root)[0] == 400, "never twice"
    time.sleep(1)
    assert sink.stats()["messages"] == 1


def test_postgresql_killed_during_quarantine_writes_holds_each_message_once(make_gateway, sink, postgres_server):
    """PostgreSQL killed (immediate shutdown: no goodbye to its clients) while a stream of mail is
    being held (mxblast's test mail scores 1.5, over a quarantine threshold of 1), then started
    again: every accepted message is held, each exactly once, and none is delivered."""
    import postgres
    from conftest import blast
    url, pg_root = postgres_server
    g = make_gateway(sink.port, knobs(quarantine__db=url, console__db=url, verdict__reject_score="0",
                                      verdict__quarantine_score="1"), name="pgkill", start=False)
    with_keyword_list(g)
    import subprocess, threading
    result = {}
    t = threading.Thread(target=lambda: result.update(blast(g.port, "-c", "5", "-m", "400", "-s", "2048", "--run", "pg",
                                                            "--rate", "100")))
    t.start()
    time.sleep(1.5)
    postgres.stop(pg_root)
    time.sleep(1.5)
    postgres.resume(pg_root)
    t.join(120)
    assert result["ok"] == 400, result
    count = lambda: int(postgres.psql(url, "SELECT count(*) FROM recipients").strip())
    wait_for(lambda: count() >= 400, timeout=60, what="every message held")
    time.sleep(1)
    assert count() == 400
    assert int(postgres.psql(url, "SELECT count(DISTINCT qid) FROM recipients").strip()) == 400
    assert sink.stats()["messages"] == 0


def smtp_codes(port, rcpt, src="127.0.0.90"):
    """The replies to connect, MAIL and RCPT (stopping at the first refusal)."""
    import smtplib
    c = smtplib.SMTP(timeout=20, source_address=(src, 0), local_hostname="client.example")
    codes = [c.connect("127.0.0.1", port)[0]]
    try:
        if codes[0] == 220:
            c.ehlo("client.example")
            codes.append(c.mail("ann@sender.example")[0])
            if codes[-1] == 250:
                codes.append(c.rcpt(rcpt)[0])
    except smtplib.SMTPServerDisconnected:
        pass
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass
    return codes


def test_the_superadmin_changes_routes_and_list_files_and_nobody_else(make_gateway, sink, tmp_path):
    domains_file = tmp_path / "domains.txt"
    domains_file.write_text("# the ISP's customers\nfiled.test\n")
    # The watcher looks only once an hour: what the console changes is in force at once.
    g = make_gateway(sink.port, knobs(relay__domains="example.test", relay__domains_file=str(domains_file), lists__check_s="3600"))
    p = g.console_port
    cli(g, "add", "root@isp.test", "--role", "superadmin", password="root's long password")
    cli(g, "add", "admin@example.test", "--role", "domain-admin", "--domains", "example.test", password="example admin pw")
    root, a = cli(g, "token", "root@isp.test"), cli(g, "token", "admin@example.test")

    # Routes: a new domain goes to the domains file, with its route; mail for it is accepted and
    # delivered there.
    assert smtp_codes(g.port, "x@new.test")[-1] == 550
    assert api(p, "PUT", "/routes/new.test", a, {"route": f"127.0.0.1:{sink.port}"})[0] == 403
    assert api(p, "PUT", "/routes/new.test", root, {"route": "127.0.0.1:notaport"})[0] == 400
    assert api(p, "PUT", "/routes/bad@name", root, {"route": ""})[0] == 400
    assert api(p, "PUT", "/routes/New.Test", root, {"route": f"127.0.0.1:{sink.port}"}) == (200, {"done": True})
    assert domains_file.read_text() == f"# the ISP's customers\nfiled.test\nnew.test:127.0.0.1:{sink.port}\n"
    assert send(g.port, message(subject="to new"), rcpts=("x@new.test",))[0] == 250
    wait_for(lambda: sink.stats()["messages"] == 1, what="mail for the new domain delivered")
    routes = {d["domain"]: d["route"] for d in api(p, "GET", "/domains", root)[1]}
    assert routes["new.test"] == f"127.0.0.1:{sink.port}" and "filed.test" in routes and "example.test" in routes, routes
    # A domain of the knob keeps its entry there (kept in the knob file for the next start).
    assert api(p, "PUT", "/routes/example.test", root, {"route": f"127.0.0.1:{sink.port}"})[0] == 200
    assert f"example.test:127.0.0.1:{sink.port}" in g.sysctl("relay.domains").stdout
    assert f"relay.domains = example.test:127.0.0.1:{sink.port}" in (g.state / "console-knobs.conf").read_text()
    # Removing: from wherever it was; its mail is relaying again.
    assert api(p, "DELETE", "/routes/filed.test", root)[0] == 200
    assert "filed.test" not in domains_file.read_text() and "# the ISP's customers" in domains_file.read_text()
    assert smtp_codes(g.port, "x@filed.test")[-1] == 550
    assert api(p, "DELETE", "/routes/filed.test", root)[0] == 404
    assert api(p, "DELETE", "/routes/example.test", a)[0] == 403

    # List files: the superadmin's only.
    assert api(p, "GET", "/files", a)[0] == 403
    assert api(p, "PUT", "/files/ip-blacklist.txt", a, {"text": "127.0.0.77\n"})[0] == 403
    names = [f["name"] for f in api(p, "GET", "/files", root)[1]]
    assert {"ip-blacklist.txt", "from-blacklist.txt", "keywords-blacklist.txt", "domain-policy.txt"} <= set(names), names
    assert api(p, "GET", "/files/..%2Fconsole.db", root)[0] == 404
    assert api(p, "GET", "/files/ip-blacklist.txt", root)[1] == {"name": "ip-blacklist.txt", "text": ""}
    assert smtp_codes(g.port, "u@example.test", src="127.0.0.77")[-1] == 250
    # A line the gateway would refuse: nothing written, the reason names the line.
    status, body = api(p, "PUT", "/files/ip-blacklist.txt", root, {"text": "127.0.0.77\r\n10.0.0.0/99"})
    assert status == 400 and "ip-blacklist.txt:2:" in body["error"], body
    assert not (g.state / "lists" / "ip-blacklist.txt").exists()
    status, body = api(p, "PUT", "/files/keywords-blacklist.txt", root, {"text": "(unclosed[regex)\n"})
    assert status == 400 and "keywords-blacklist.txt:1:" in body["error"], body
    # A good one is in force at once (the watcher would not look for an hour).
    status, body = api(p, "PUT", "/files/ip-blacklist.txt", root, {"text": "127.0.0.77\r\n10.0.0.0/8"})
    assert status == 200 and body["entries"] >= 2, body
    assert (g.state / "lists" / "ip-blacklist.txt").read_text() == "127.0.0.77\n10.0.0.0/8\n"
    assert smtp_codes(g.port, "u@example.test", src="127.0.0.77")[-1] >= 500
    assert smtp_codes(g.port, "u@example.test", src="127.0.0.78")[-1] == 250
    assert send(g.port, message(subject="meds", body="cheap meds\r\n"), rcpts=("u@example.test",))[0] == 250
    assert api(p, "PUT", "/files/keywords-blacklist.txt", root, {"text": "cheap meds\n"})[0] == 200
    assert send(g.port, message(subject="meds", body="cheap meds\r\n"), rcpts=("u@example.test",))[0] == 550
    assert g.wait_events("list_file_set")[-1]["by"] == "root@isp.test"
