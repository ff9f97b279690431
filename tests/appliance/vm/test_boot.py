"""The appliance booted under KVM: first boot with a seed (timed to the SMTP greeting), relay
through the guest to the host's sink, only the expected ports open; no seed; a bad seed."""

import re
import smtplib
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from guest import Guest, seed_volume  # noqa: E402
from harness import SETUP_CODE, console_post, record, seed_text, ssh, wait_for  # noqa: E402

MESSAGE = b"From: ann@sender.example\r\nTo: u@example.test\r\nSubject: through the appliance\r\n\r\nhello\r\n"


def relay_refused(g, rcpt):
    with smtplib.SMTP("127.0.0.1", g.smtp, timeout=60) as c:
        c.ehlo("client.example")
        c.mail("ann@sender.example")
        code, text = c.rcpt(rcpt)
        return code in (550, 554) and b"relay" in text.lower()


def console_reachable(g):
    try:
        urllib.request.urlopen(f"https://127.0.0.1:{g.console}/login", context=ssl._create_unverified_context(), timeout=10)
        return True
    except OSError:
        return False


def listening(g, key):
    """The guest's listening TCP sockets, as (address, port)."""
    out = ssh(g, key, "ss", "-Htln").stdout
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        addr, port = local.rsplit(":", 1)
        found.add((re.sub(r"%\w+$", "", addr), int(port)))
    return found


@pytest.mark.smoke
def test_a_seeded_node_boots_relays_and_opens_only_its_ports(image, sink, ssh_key, guests, tmp_path):
    seed = seed_volume(tmp_path / "seed.img", seed_text(key=ssh_key))
    g = Guest(image, tmp_path / "vm", seed=seed, sink_port=sink.port)
    guests.append(g)
    g.start()
    seconds = g.wait_greeting(timeout=180)
    record(what="first boot to the SMTP greeting (seed applied, data and spool partitions made)", seconds=round(seconds, 1))
    g.wait_console(r"mxguard-seed: applied seed serial 1")

    # Mail for a seeded domain goes through the guest to the host's sink, with the verdict's fields.
    with smtplib.SMTP("127.0.0.1", g.smtp, timeout=60) as c:
        c.ehlo("client.example")
        c.sendmail("ann@sender.example", ["u@example.test"], MESSAGE)
    wait_for(lambda: sink.stats().get("messages", 0) >= 1, timeout=60, what="the message at the sink")
    got = sink.messages()[0]
    assert b"Subject: through the appliance" in got and re.search(rb"^X-mxguard-[A-Za-z-]+:", got, re.M), got[:2000]
    assert relay_refused(g, "u@elsewhere.example")

    # The console (HTTPS, self-signed) and metrics answer through the forwarded ports.
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    page = urllib.request.urlopen(f"https://127.0.0.1:{g.console}/login", context=insecure, timeout=30).read().decode()
    assert "password" in page.lower()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{g.metrics}/metrics", timeout=30).read().decode()
    assert "mxguard_" in metrics

    # The seed names no superadmin's password: a setup code on the serial console makes one, once.
    code = g.wait_console(SETUP_CODE).group(1)
    form = {"code": code, "email": "postmaster", "password": "a long password", "password2": "a long password"}
    status, cookie = console_post(g, "/setup", form)
    assert status == 303 and cookie.startswith("mxg_session="), (status, cookie)
    assert console_post(g, "/setup", form)[0] == 410
    assert console_post(g, "/login", {"email": "postmaster", "password": "a long password"})[0] == 303

    # Nothing else listens: SMTP, the console, metrics (the seed opened them to its admin
    # network) and SSH (the seed gave a key).
    expected = {("0.0.0.0", 25), ("0.0.0.0", 8025), ("0.0.0.0", 9125), ("0.0.0.0", 22), ("[::]", 22)}
    assert listening(g, ssh_key) == expected

    # The file systems: root read-only squashfs; /var and the spool on partitions of their own,
    # grown to the disk (8 GiB: the spool a third of what the slots leave, the data two thirds).
    mounts = ssh(g, ssh_key, "findmnt", "-rno", "TARGET,SOURCE,FSTYPE,OPTIONS").stdout
    rows = {line.split()[0]: line.split()[1:] for line in mounts.splitlines()}
    assert rows["/"][1] == "squashfs" and "ro" in rows["/"][2].split(","), mounts
    assert rows["/var"][1] == rows["/var/lib/mxguard/spool"][1] == "ext4", mounts
    sizes = dict(line.split() for line in ssh(g, ssh_key, "lsblk", "-rnbo", "PARTLABEL,SIZE").stdout.splitlines() if line.startswith("mxguard"))
    assert int(sizes["mxguard-data"]) > 3 * 2**30 and int(sizes["mxguard-spool"]) > 1.5 * 2**30, sizes


def test_without_a_seed_the_node_is_safe(image, sink, guests, tmp_path):
    g = Guest(image, tmp_path / "vm", sink_port=sink.port)
    guests.append(g)
    g.start()
    g.wait_greeting(timeout=180)
    g.wait_console(r"mxguard-seed: no seed applied")
    # The setup code on the console, and again above the login prompt (which clears nothing).
    code = g.wait_console(SETUP_CODE).group(1)
    g.wait_console(rf"{code}[^\n]*\r?\n\s*mxguard login:")
    assert relay_refused(g, "u@example.test")
    # The console listens on the guest's loopback only: the forwarded port finds nothing.
    assert not console_reachable(g)


def test_a_bad_seed_is_refused_whole_with_its_reasons(image, sink, guests, tmp_path):
    text = seed_text().replace("[knobs]\n", "[knobs]\nno.such_knob = 1\n").replace("mode = dhcp", "mode = dhcp\naddress = 300.1.2.3/24")
    seed = seed_volume(tmp_path / "seed.img", text)
    g = Guest(image, tmp_path / "vm", seed=seed, sink_port=sink.port)
    guests.append(g)
    g.start()
    g.wait_greeting(timeout=180)
    g.wait_console(r"seed refused")
    console = g.console_text()
    lines = text.splitlines()
    for needle in ["no.such_knob", "300.1.2.3"]:
        n = next(i for i, l in enumerate(lines, 1) if needle in l)
        assert re.search(rf"seed\.ini:{n}: ", console), (needle, n, console[-3000:])
    # Nothing of it applied: the safe state, relay refused even for the seed's own domain, the
    # console on the guest's loopback only.
    assert relay_refused(g, "u@example.test")
    assert not console_reachable(g)
