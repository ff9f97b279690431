"""The web console end to end in headless Chromium (Debian's chromium + chromedriver, driven by
Selenium) against the real gateway: spam sent over SMTP is held; its recipient logs in, sees
only their own mail with the reason, reads it as text, releases it; it arrives at the sink, its
sender is on the user's allow list (the next mail from it passes) and Bayes learnt it as ham.
Over HTTPS with the gateway's certificate. Role isolation: a user never sees another's mail, a domain admin only their domains', by page or
by guessed address; forms without the session's CSRF token are refused; logins are throttled.

Set MXGUARD_SCREENSHOTS=DIR to keep screenshots of the pages (docs/console/ holds the last ones)."""

import http.client
import os
import shutil
import sqlite3
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from conftest import MXGUARD, wait_for
from test_content import accepted_symbols, knobs, message, send

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed")


def cli(g, *args, password=None, extra=()):
    """`mxguard user ARGS` on `g`'s state directory (a password on standard input); its output."""
    out = subprocess.run([str(MXGUARD), "user", *args, "--set", f"state.dir={g.state}", *extra], input=(password or "") + "\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def add_user(g, login, password, *extra):
    cli(g, "add", login, *extra, password=password)


def with_keyword_list(g):
    """Starts `g` with "cheap meds" on its keyword blacklist (so test mail is easy to hold)."""
    lists = g.state / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "keywords-blacklist.txt").write_text("cheap meds\n")
    return g.start()


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    # The console's certificate is the gateway's self-signed one here.
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
              "--ignore-certificate-errors"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(DRIVER), options=o)


def shot(b, name):
    d = os.environ.get("MXGUARD_SCREENSHOTS")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        b.save_screenshot(str(Path(d) / f"{name}.png"))


def login(b, base, email, password):
    from selenium.webdriver.common.by import By
    b.get(base + "/login")
    b.find_element(By.ID, "email").send_keys(email)
    b.find_element(By.ID, "password").send_keys(password)
    b.find_element(By.ID, "login").click()


def by_id(b, element_id):
    """The element once the page that has it is loaded (a click's navigation is not awaited).
    Asked mid-navigation, chromedriver may answer "aborted by navigation" instead of "no such
    element"; both mean "not yet" here, and a page that never comes still times out."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(b, 10, ignored_exceptions=(WebDriverException,))
    return wait.until(ec.presence_of_element_located((By.ID, element_id)))


def submit(b, element_id):
    """Clicks a button and waits until its page is replaced (the next page may have the same ids)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    old = b.find_element(By.TAG_NAME, "html")
    by_id(b, element_id).click()

    def replaced(_):
        # Gone: chromedriver says so as a stale element, or, mid-navigation, as a node that
        # "does not belong to the document".
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True
    WebDriverWait(b, 10).until(replaced)


def held(g):
    with sqlite3.connect(g.state / "quarantine.db") as db:
        return db.execute("SELECT r.id, r.rcpt, r.state FROM recipients r ORDER BY r.id").fetchall()


def raw_post(port, path, body, cookie=""):
    import ssl
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context())
    c.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Set-Cookie") or "", data


def test_a_user_releases_their_mail_and_roles_stay_apart(make_gateway, sink):
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(relay__domains="example.test,other.test", verdict__reject_score="0",
                                      bayes__journal_sync_ms="50"), start=False)
    with_keyword_list(g)
    add_user(g, "ann@example.test", "ann's long password")
    add_user(g, "bob@example.test", "bob's long password")
    add_user(g, "admin@other.test", "other admin password", "--role", "domain-admin", "--domains", "other.test")
    base = f"https://127.0.0.1:{g.console_port}"
    spam = message(subject="Cheap meds <b>today</b>", body="Buy cheap meds online, <script>alert(1)</script> now.\r\n")
    assert send(g.port, spam, rcpts=("ann@example.test",))[0] == 250
    assert send(g.port, message(subject="for bob", body="cheap meds for bob\r\n"), rcpts=("bob@example.test",))[0] == 250
    assert send(g.port, message(subject="for carol", body="cheap meds for carol\r\n"), rcpts=("carol@other.test",))[0] == 250
    wait_for(lambda: len(held(g)) == 3, what="three held copies")
    ids = {rcpt: i for i, rcpt, _ in held(g)}

    b = browser()
    try:
        login(b, base, "ann@example.test", "wrong password")
        assert "Wrong mail address or password" in by_id(b, "error").text
        login(b, base, "ann@example.test", "ann's long password")
        table = by_id(b, "messages").text
        shot(b, "quarantine")
        assert "Cheap meds <b>today</b>" in table and "keyword blacklist" in table, table
        assert "for bob" not in table and "for carol" not in table
        # The message as text: its markup and script are shown, never run or rendered.
        b.find_element(By.LINK_TEXT, "Cheap meds <b>today</b>").click()
        text = by_id(b, "text").text
        shot(b, "message")
        assert "<script>alert(1)</script>" in text, text
        # Another user's message by its address: not there.
        b.get(f"{base}/message/{ids['bob@example.test']}")
        assert "There is no such page, message or account" in b.page_source
        # Auto-learn took the held messages as spam (a keyword line scores 100).
        learnt = lambda: (g.metrics()['mxguard_bayes_learned_messages{kind="spam"}'], g.metrics()['mxguard_bayes_learned_messages{kind="ham"}'])
        autolearnt = len([e for e in g.events("bayes_autolearn") if e["as"] == "spam"])
        assert autolearnt == 3, g.events("bayes_autolearn")
        wait_for(lambda: learnt()[0] == autolearnt, what="the auto-learnt spam applied")
        ham_before = learnt()[1]
        b.get(base + "/")
        b.find_element(By.ID, f"release-{ids['ann@example.test']}").click()
        note = by_id(b, "note").text
        shot(b, "released")
        assert "Released" in note and "ann@example.test" in note, note
        wait_for(lambda: sink.stats()["messages"] == 1, what="the released message at the sink")
        assert [s for _, r, s in held(g) if r == "ann@example.test"] == ["released"]
        ev = g.wait_events("quarantine_released")[-1]
        assert (ev["rcpt"], ev["by"], ev["bayes"]) == ("ann@example.test", "ann@example.test", "ham"), ev
        # Bayes learnt it as ham (the learner thread publishes within bayes.journal_sync_ms), and
        # took back the spam lesson auto-learn had made of it: the released copy has the tokens
        # the message was scanned by on arrival.
        wait_for(lambda: learnt() == (autolearnt - 1, ham_before + 1), what="the ham lesson in place of the spam one")
        # The sender is on ann's allow list, and the next mail from it passes the keyword.
        b.get(base + "/lists")
        assert "ann@sender.example" in by_id(b, "lists").text
        shot(b, "lists")
        assert send(g.port, message(subject="again", body="cheap meds again\r\n"), rcpts=("ann@example.test",))[0] == 250
        wait_for(lambda: sink.stats()["messages"] == 2, what="the allowed sender's next mail delivered")
        assert "USER_ALLOW" in accepted_symbols(g)[-1]
        # Logged out, the pages send back to the login.
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")
        b.get(base + "/")
        assert b.current_url.endswith("/login")

        # A domain admin of other.test sees carol's mail and nothing of example.test.
        login(b, base, "admin@other.test", "other admin password")
        table = by_id(b, "messages").text
        shot(b, "domain-admin")
        assert "for carol" in table and "carol@other.test" in table and "for bob" not in table and "Cheap meds" not in table, table
        b.get(f"{base}/message/{ids['bob@example.test']}")
        assert "There is no such page, message or account" in b.page_source
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in b.get_cookies())
    finally:
        b.quit()

    # The session cookie is HttpOnly, SameSite=Strict and Secure (HTTPS); a form without its
    # CSRF token is refused; plain HTTP gets no answer.
    status, set_cookie, _ = raw_post(g.console_port, "/login", urllib.parse.urlencode({"email": "bob@example.test", "password": "bob's long password"}))
    assert status == 303 and all(a in set_cookie for a in ("HttpOnly", "SameSite=Strict", "Secure")), (status, set_cookie)
    plain = http.client.HTTPConnection("127.0.0.1", g.console_port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/login")
        plain.getresponse().read()
    status, _, body = raw_post(g.console_port, f"/message/{ids['carol@other.test']}/release", "csrf=forged", cookie)
    assert status == 403, (status, body)
    assert [s for _, r, s in held(g) if r == "carol@other.test"] == ["held"]
    # Guessing passwords: throttled after console.login_failures (5) failures from one address
    # (the browser's wrong password above was the first).
    codes = [raw_post(g.console_port, "/login", "email=bob%40example.test&password=guess")[0] for _ in range(6)]
    assert codes == [401] * 4 + [429] * 2, codes
    status, _, _ = raw_post(g.console_port, "/login", urllib.parse.urlencode({"email": "bob@example.test", "password": "bob's long password"}))
    assert status == 429, "even the right password waits out the window"
    g.wait_events("console_login", pred=lambda e: e["result"] == "throttled", n=3)


def test_the_digest_arrives_with_release_links_that_work_once_and_only_as_signed(make_gateway, sink):
    import re
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(verdict__reject_score="0", console__digest_hour="-1", bayes__journal_sync_ms="50"), start=False)
    with_keyword_list(g)
    for n in range(2):
        assert send(g.port, message(subject=f"meds {n}", body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
    assert send(g.port, message(subject="for bob", body="cheap meds\r\n"), rcpts=("bob@example.test",))[0] == 250
    wait_for(lambda: len(held(g)) == 3, what="three held copies")
    out = subprocess.run([str(MXGUARD), "digest", "--set", f"state.dir={g.state}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "sent 2 digest(s)" in out.stdout, (out.stdout, out.stderr)
    add_user(g, "ann@example.test", "ann's long password")
    wait_for(lambda: sink.stats()["messages"] == 2, what="two digests at the sink")
    digests = {m.split(b"\r\nTo: <", 1)[1].split(b">", 1)[0].decode(): m.decode() for m in sink.messages()}
    ann = digests["ann@example.test"]
    assert "Subject: Quarantine digest: 2 held message(s)" in ann and "meds 0" in ann and "meds 1" in ann and "for bob" not in ann
    links = re.findall(r"Release: (https://\S+)", ann)
    assert len(links) == 2 and all(f":{g.console_port}/r/" in l for l in links), links
    # Nothing new since: a second run sends nothing.
    out = subprocess.run([str(MXGUARD), "digest", "--set", f"state.dir={g.state}"], capture_output=True, text=True, timeout=60)
    assert "sent 0 digest(s)" in out.stdout, out.stdout
    link = links[0].replace("mx.example.test", "127.0.0.1")
    b = browser()
    try:
        # A tampered link (another copy's id with this MAC) is refused.
        parts = link.rsplit("/", 3)
        b.get(f"{parts[0]}/{int(parts[1]) + 1}/{parts[2]}/{parts[3]}")
        assert "not valid or has expired" in by_id(b, "error").text
        # Opening the link changes nothing (prefetchers GET); the button releases.
        b.get(link)
        shot(b, "digest-link")
        assert [s for _, r, s in held(g) if r == "ann@example.test"] == ["held", "held"]
        by_id(b, "release").click()
        assert "Released" in by_id(b, "note").text
        wait_for(lambda: sink.stats()["messages"] == 3, what="the released message")
        assert sorted(s for _, r, s in held(g) if r == "ann@example.test") == ["held", "released"]
        # Used once: the second time it says so.
        b.get(link)
        assert "already released" in by_id(b, "note").text
        # Ann reports the other one as spam: Bayes learns it, it leaves her list.
        login(b, f"https://127.0.0.1:{g.console_port}", "ann@example.test", "ann's long password")
        other = next(i for i, r, s in held(g) if r == "ann@example.test" and s == "held")
        spam_before = g.metrics()['mxguard_bayes_learned_messages{kind="spam"}']
        by_id(b, f"spam-{other}").click()
        assert "Reported as spam" in by_id(b, "note").text
        rows = by_id(b, "messages").text
        assert "meds" in rows and "released" in rows and len(b.find_elements(By.ID, f"row-{other}")) == 0, rows
        wait_for(lambda: g.metrics()['mxguard_bayes_learned_messages{kind="spam"}'] == spam_before + 1, what="the spam lesson")
        assert g.wait_events("quarantine_reported")[-1]["bayes"] == "spam"
    finally:
        b.quit()
    ev = g.wait_events("quarantine_released")[-1]
    assert ev["by"] == "link:ann@example.test", ev


def test_admins_track_mail_and_see_statistics_of_their_domains_only(make_gateway, sink):
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(relay__domains="example.test,other.test", verdict__reject_score="0"), start=False)
    with_keyword_list(g)
    add_user(g, "admin@example.test", "example admin password", "--role", "domain-admin", "--domains", "example.test")
    add_user(g, "tech@isp.test", "technician password", "--role", "technician", "--domains", "other.test")
    add_user(g, "ann@example.test", "ann's long password")
    assert send(g.port, message(subject="hello ann"), rcpts=("ann@example.test",))[0] == 250
    assert send(g.port, message(subject="meds", body="cheap meds\r\n"), rcpts=("bob@example.test",))[0] == 250
    assert send(g.port, message(subject="hello carol"), rcpts=("carol@other.test",), src="127.0.0.91")[0] == 250
    # (The quarantined one is "delivered" to the quarantine transport.)
    wait_for(lambda: sink.stats()["messages"] == 2 and len(g.events("delivered")) == 3, what="three hand-offs")
    qid = next(e["qid"] for e in g.events("accepted") if e["rcpt"] == ["ann@example.test"])
    base = f"https://127.0.0.1:{g.console_port}"
    b = browser()
    try:
        login(b, base, "admin@example.test", "example admin password")
        by_id(b, "messages")
        b.get(base + "/track")
        events = by_id(b, "events").text
        shot(b, "tracking")
        assert "ann@example.test" in events and "bob@example.test" in events and "carol@other.test" not in events, events
        assert "delivered" in events and "action: quarantine" in events
        b.get(f"{base}/track?q={qid}&hours=2")
        events = by_id(b, "events").text
        assert qid in events and "bob@example.test" not in events, events
        b.get(base + "/stats")
        by_id(b, "hourly")
        shot(b, "statistics")
        assert by_id(b, "total-delivered-clean").text == "1" and by_id(b, "total-quarantined").text == "1"
        assert "KEYWORD_BL" in by_id(b, "symbols").text
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")

        # The technician of other.test: carol's mail only, and no quarantine.
        login(b, base, "tech@isp.test", "technician password")
        assert "Nothing is held" in by_id(b, "empty").text
        b.get(base + "/track")
        events = by_id(b, "events").text
        assert "carol@other.test" in events and "example.test" not in events, events
        held_id = held(g)[0][0]
        b.get(f"{base}/message/{held_id}")
        assert "There is no such page, message or account" in b.page_source
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")

        # An end user has no tracking at all.
        login(b, base, "ann@example.test", "ann's long password")
        by_id(b, "empty")
        b.get(base + "/track")
        assert "There is no such page, message or account" in b.page_source
    finally:
        b.quit()


def test_the_digest_logs_its_recipient_in_once_and_admins_work_in_their_pages(make_gateway, sink):
    import re
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    g = make_gateway(sink.port, knobs(relay__domains="example.test,other.test", verdict__reject_score="0", console__digest_hour="-1"), start=False)
    with_keyword_list(g)
    for subject in ("Cheap watches", "Your invoice"):
        assert send(g.port, message(subject=subject, body="cheap meds\r\n"), rcpts=("ann@example.test",))[0] == 250
    assert send(g.port, message(subject="for carol", body="cheap meds\r\n"), rcpts=("carol@other.test",))[0] == 250
    wait_for(lambda: len(held(g)) == 3, what="three held copies")
    out = subprocess.run([str(MXGUARD), "digest", "--set", f"state.dir={g.state}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: sink.stats()["messages"] == 2, what="two digests")
    ann = next(m.decode() for m in sink.messages() if b"To: <ann@example.test>" in m)
    login_link = re.search(r"logs you in once, until [^)]*\): (https://\S+)", ann).group(1).replace("mx.example.test", "127.0.0.1")
    assert "/l/" in login_link
    base = f"https://127.0.0.1:{g.console_port}"
    add_user(g, "admin@example.test", "example admin password", "--role", "domain-admin", "--domains", "example.test")
    b = browser()
    try:
        # Ann has no password at all: the link (a button, for prefetchers) logs her in.
        b.get(login_link)
        shot(b, "digest-login")
        submit(b, "continue")
        table = by_id(b, "messages").text
        assert "Cheap watches" in table and "Your invoice" in table and "for carol" not in table, table
        # Her search: words of the subject.
        by_id(b, "s-subject").send_keys("invoice")
        submit(b, "s-go")
        table = by_id(b, "messages").text
        shot(b, "search")
        assert "Your invoice" in table and "Cheap watches" not in table, table
        # End users have no admin pages.
        b.get(base + "/admin/accounts")
        assert "may not manage accounts" in by_id(b, "error").text
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")
        # The link works once.
        b.get(login_link)
        submit(b, "continue")
        assert "was used already" in by_id(b, "error").text
        b.get(base + "/")
        assert b.current_url.endswith("/login")

        # The domain admin: adds a subadmin for ann, changes a filter setting of the domain, reads
        # the knobs (no form), and cannot reach other.test.
        login(b, base, "admin@example.test", "example admin password")
        by_id(b, "messages")
        b.get(base + "/admin/accounts")
        by_id(b, "a-email").send_keys("helper@example.test")
        Select(by_id(b, "a-role")).select_by_visible_text("subadmin")
        by_id(b, "a-domains").send_keys("example.test")
        by_id(b, "a-members").send_keys("ann@example.test")
        by_id(b, "a-password").send_keys("helper's password")
        submit(b, "a-save")
        assert "Saved helper@example.test" in by_id(b, "note").text
        assert "subadmin" in by_id(b, "accounts").text
        by_id(b, "a-email").send_keys("eve@other.test")
        by_id(b, "a-password").send_keys("eve's long password")
        submit(b, "a-save")
        assert "may not give" in by_id(b, "note").text
        submit(b, "t-new")
        assert by_id(b, "new-token").text.startswith("mxg_")
        shot(b, "accounts")
        b.get(base + "/admin/domains")
        assert "example.test" in by_id(b, "domains").text and "other.test" not in by_id(b, "domains").text
        by_id(b, "d-domain").send_keys("example.test")
        by_id(b, "d-setting").send_keys("verdict.quarantine_score")
        by_id(b, "d-value").send_keys("12")
        submit(b, "d-save")
        assert "Saved" in by_id(b, "note").text
        assert "verdict.quarantine_score = 12" in by_id(b, "domain-example.test").text
        shot(b, "domains")
        by_id(b, "d-domain").send_keys("other.test")
        by_id(b, "d-setting").send_keys("greylist")
        by_id(b, "d-value").send_keys("off")
        submit(b, "d-save")
        assert "no such page" in by_id(b, "note").text
        assert "other.test" not in (g.state / "lists" / "domain-policy.txt").read_text()
        b.get(base + "/admin/knobs")
        assert "console.login_failures" in by_id(b, "knobs").text and not b.find_elements(By.ID, "k-save")
        shot(b, "knobs")
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")
        # The subadmin sees ann's mail and nobody else's.
        login(b, base, "helper@example.test", "helper's password")
        table = by_id(b, "messages").text
        assert "ann@example.test" in table and "carol" not in table, table
    finally:
        b.quit()


class Recorder:
    """An HTTP server on loopback that counts every request made to it: the "remote" content
    a held message points at."""

    def __init__(self):
        import http.server
        import threading
        self.paths = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def png_2x2():
    """A 2x2 red PNG: the message's own inline image, shown from the message itself."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xc8\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_html_mail_is_previewed_cleaned_with_nothing_remote_loaded_or_run(make_gateway, sink):
    import base64
    import time
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(verdict__reject_score="0"), start=False)
    with_keyword_list(g)
    add_user(g, "ann@example.test", "ann's long password")
    r = Recorder()
    try:
        html = (f"<html><head><link rel=\"stylesheet\" href=\"{r.url('/sheet.css')}\">"
                f"<style>body {{ background: url({r.url('/style-bg')}) }}</style></head><body>"
                f"<h2>Hello Ann, cheap meds</h2>"
                f"<p style=\"color: rgb(200, 0, 0); background-image: url({r.url('/inline-bg')})\">Red words</p>"
                f"<img src=\"{r.url('/pixel.gif')}\" width=\"10\" height=\"10\">"
                f"<img src=\"cid:logo@sender.example\" alt=\"logo\">"
                f"<a href=\"{r.url('/login')}\">https://bank.example/</a>"
                f"<script>fetch('{r.url('/script')}'); new Image().src = '{r.url('/script-img')}';</script>"
                f"<img src=\"x\" onerror=\"fetch('{r.url('/onerror')}')\">"
                f"<iframe src=\"{r.url('/frame')}\"></iframe>"
                f"<form action=\"{r.url('/form')}\" method=\"post\"><input name=\"password\"><button>go</button></form>"
                f"<object data=\"{r.url('/object')}\"></object><video poster=\"{r.url('/poster')}\"></video>"
                "</body></html>")
        mime = ("MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n"
                f"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
                "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@sender.example>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                f"{base64.b64encode(png_2x2()).decode()}\r\n--rel--\r\n")
        assert send(g.port, message(subject="Your account", mime=mime), rcpts=("ann@example.test",))[0] == 250
        wait_for(lambda: len(held(g)) == 1, what="the held copy")
        (copy, _, _), = held(g)
        base = f"https://127.0.0.1:{g.console_port}"
        b = browser()
        try:
            login(b, base, "ann@example.test", "ann's long password")
            by_id(b, "messages")
            b.get(f"{base}/message/{copy}")
            note = by_id(b, "preview-note").text
            assert "remote image" in note, note
            links = by_id(b, "links").text
            assert r.url("/login") in links and "https://bank.example/" in links, links
            frame = by_id(b, "preview")
            assert frame.get_attribute("sandbox") == ""
            b.switch_to.frame(frame)
            # (The cleaned document keeps no ids of the message's: found by tag.)
            assert "Hello Ann" in b.find_element(By.TAG_NAME, "h2").text, b.page_source
            red = b.find_element(By.TAG_NAME, "p")
            assert "Red words" in red.text and red.value_of_css_property("color") in ("rgba(200, 0, 0, 1)", "rgb(200, 0, 0)")
            sources = [i.get_attribute("src") for i in b.find_elements(By.TAG_NAME, "img")]
            assert [s for s in sources if s] == [s for s in sources if s and s.startswith("data:image/png;base64,")] and len([s for s in sources if s]) == 1, sources
            logo = next(i for i in b.find_elements(By.TAG_NAME, "img") if i.get_attribute("src"))
            assert logo.size["width"] == 2, logo.size
            phish, = b.find_elements(By.TAG_NAME, "a")
            assert phish.text == "https://bank.example/" and phish.get_attribute("href") is None
            for gone in ("form", "input", "iframe", "script", "object", "video", "link", "style"):
                assert b.find_elements(By.CSS_SELECTOR, f"body {gone}") == [], gone
            b.switch_to.default_content()
            shot(b, "message-preview")
            # Whatever ran, it had time to try.
            time.sleep(1.5)
            assert r.paths == [], r.paths
            # The frame's document carries its own sandbox policy, and needs the session.
            status, headers = preview_headers(g.console_port, copy, "; ".join(f"{c['name']}={c['value']}" for c in b.get_cookies()))
            assert status == 200 and "sandbox" in headers["content-security-policy"] and "img-src data:" in headers["content-security-policy"]
            assert preview_headers(g.console_port, copy, "")[0] == 303
            # The recorder does record: the browser's own request to it is seen.
            b.get(r.url("/control"))
            wait_for(lambda: "/control" in r.paths, what="the control request")
        finally:
            b.quit()
    finally:
        r.close()


def preview_headers(port, copy, cookie):
    import ssl
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context())
    c.request("GET", f"/message/{copy}/preview", headers={"Cookie": cookie})
    resp = c.getresponse()
    resp.read()
    c.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}


def test_the_superadmin_edits_list_files_and_routes_in_the_browser(make_gateway, sink):
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(relay__domains="example.test", lists__check_s="3600"))
    add_user(g, "root@isp.test", "root's long password", "--role", "superadmin")
    add_user(g, "admin@example.test", "example admin password", "--role", "domain-admin", "--domains", "example.test")
    base = f"https://127.0.0.1:{g.console_port}"
    b = browser()
    try:
        # A domain admin has neither the files nor the route form.
        login(b, base, "admin@example.test", "example admin password")
        by_id(b, "empty")
        assert b.find_elements(By.LINK_TEXT, "list files") == [] and b.find_elements(By.LINK_TEXT, "weights") == []
        b.get(base + "/admin/files")
        assert "may not change the gateway's lists" in by_id(b, "error").text
        b.get(base + "/admin/domains")
        by_id(b, "domains")
        assert b.find_elements(By.ID, "r-domain") == []
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")

        login(b, base, "root@isp.test", "root's long password")
        by_id(b, "empty")
        # The learned weights' page: nothing learnt on this gateway yet.
        b.find_element(By.LINK_TEXT, "weights").click()
        assert "Lessons kept: 0 spam, 0 ham" in by_id(b, "lessons").text
        assert "No model fitted yet" in by_id(b, "state").text
        b.find_element(By.LINK_TEXT, "list files").click()
        by_id(b, "files")
        b.find_element(By.LINK_TEXT, "from-blacklist.txt").click()
        text = by_id(b, "file-text")
        text.send_keys("*@spam.example\n([broken)\n")
        submit(b, "file-save")
        error = by_id(b, "error").text
        assert "Not saved" in error and "from-blacklist.txt:2:" in error, error
        assert by_id(b, "file-text").get_attribute("value") == "*@spam.example\n([broken)\n", "the refused text stays to be mended"
        assert not (g.state / "lists" / "from-blacklist.txt").exists()
        shot(b, "list-file")
        text = by_id(b, "file-text")
        text.clear()
        text.send_keys("*@spam.example\n")
        submit(b, "file-save")
        assert "Saved and in force" in by_id(b, "note").text
        assert (g.state / "lists" / "from-blacklist.txt").read_text() == "*@spam.example\n"

        # A new domain with its route, from the domains page; then removed again.
        b.get(base + "/admin/domains")
        by_id(b, "r-domain").send_keys("new.test")
        by_id(b, "r-route").send_keys(f"127.0.0.1:{sink.port}")
        submit(b, "r-save")
        assert "new.test is a local domain" in by_id(b, "note").text
        assert f"127.0.0.1:{sink.port}" in by_id(b, "domain-new.test").text
        shot(b, "domains-superadmin")
        assert send(g.port, message(subject="to new"), rcpts=("x@new.test",))[0] == 250
        wait_for(lambda: sink.stats()["messages"] == 1, what="mail for the new domain")
        submit(b, "remove-new.test")
        assert "no longer a local domain" in by_id(b, "note").text
        assert b.find_elements(By.ID, "domain-new.test") == []
    finally:
        b.quit()
    # The sender list is in force: refused (or held) from now on.
    import smtplib
    c = smtplib.SMTP("127.0.0.1", g.port, timeout=20)
    try:
        c.ehlo("client.example")
        code = c.mail("x@spam.example")[0]
        if code == 250:
            code = c.rcpt("u@example.test")[0]
        assert code >= 500, code
    finally:
        c.close()


def setup_code(g):
    out = subprocess.run([str(MXGUARD), "setup-code", "--set", f"state.dir={g.state}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_first_superadmin_comes_from_the_one_time_setup_code(make_gateway, sink):
    """A node without a superadmin: `mxguard setup-code` prints a code (the appliance shows it on
    its console); the login page points to /setup; a wrong code, or two passwords that differ,
    make nobody; the right one makes the superadmin and logs them in, and works only once; tries
    are throttled; once a superadmin exists no code is issued. A superadmin given as a password
    hash (the appliance seed's way) logs in with the password."""
    from selenium.webdriver.common.by import By
    g = make_gateway(sink.port, knobs(relay__domains="example.test", console__login_failures="3"))
    base = f"https://127.0.0.1:{g.console_port}"
    first = setup_code(g)
    code = setup_code(g)
    assert code != first and len(code) == 14
    b = browser()
    try:
        b.get(base + "/login")
        by_id(b, "setup-link").click()

        def fill(typed, login_, password, again):
            for element_id, value in (("code", typed), ("email", login_), ("password", password), ("password2", again)):
                by_id(b, element_id).send_keys(value)
            submit(b, "create")

        fill(first, "root@isp.test", "root's long password", "root's long password")
        assert "not the setup code" in by_id(b, "error").text, "an older code is dead"
        fill(code, "root@isp.test", "root's long password", "something else")
        assert "differ" in by_id(b, "error").text
        shot(b, "setup")
        # Typed as people type: lower case, no dashes.
        fill(code.replace("-", "").lower(), "root@isp.test", "root's long password", "root's long password")
        by_id(b, "empty")
        assert b.find_elements(By.LINK_TEXT, "list files"), "logged in as the superadmin"
        b.find_element(By.ID, "logout").click()
        by_id(b, "login")
        assert b.find_elements(By.ID, "setup-open") == [], "no more setup once a superadmin exists"
        login(b, base, "root@isp.test", "root's long password")
        by_id(b, "empty")
    finally:
        b.quit()

    # The same code again, by hand: setup is done.
    form = urllib.parse.urlencode({"code": code, "email": "mallory", "password": "mallory's password", "password2": "mallory's password"})
    status, cookie, page = raw_post(g.console_port, "/setup", form)
    assert status == 410 and not cookie and b"Setup is done" in page
    assert setup_code(g) == "" and not (g.state / "setup-code").exists()

    # A superadmin from a PHC string logs in with its password.
    phc = cli(g, "hash", password="a seeded password")
    cli(g, "add", "postmaster", "--role", "superadmin", "--password-hash", password=phc)
    status, cookie, _ = raw_post(g.console_port, "/login", urllib.parse.urlencode({"email": "postmaster", "password": "a seeded password"}))
    assert status == 303 and cookie.startswith("mxg_session="), (status, cookie)

    # Wrong codes are throttled like logins (3 here), per client address.
    g2 = make_gateway(sink.port, knobs(console__login_failures="3"), name="gw2")
    good = setup_code(g2)
    for n in range(4):
        status, _, _ = raw_post(g2.console_port, "/setup", urllib.parse.urlencode({"code": "AAAA-BBBB-CCCC", "email": "x", "password": "long enough", "password2": "long enough"}))
        assert status == (401 if n < 3 else 429), (n, status)
    status, _, _ = raw_post(g2.console_port, "/setup", urllib.parse.urlencode({"code": good, "email": "x", "password": "long enough", "password2": "long enough"}))
    assert status == 429, "even the right code waits out the throttle"
    assert (g2.state / "setup-code").exists()
