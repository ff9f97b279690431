"""The gateway as tools nobody here wrote see it: nmap's open-relay probe and testssl.sh, run
against the real binary on loopback (Debian's nmap and testssl.sh)."""

import json
import shutil
import subprocess

import pytest

from conftest import free_port, wait_for

NMAP = shutil.which("nmap")


def nmap_relay(port, *script_args):
    """nmap's smtp-open-relay (16 tricks) against 127.0.0.1:`port`; its verdict line. The `+`
    runs the script on a port nmap does not take for SMTP."""
    args = ",".join(("smtp-open-relay.ip=127.0.0.1",) + script_args)
    r = subprocess.run([NMAP, "-Pn", "-n", "-p", str(port), "--script", "+smtp-open-relay",
                        "--script-args", args, "-d", "127.0.0.1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if "smtp-open-relay" in l]
    assert lines, r.stdout
    return r.stdout


@pytest.mark.skipif(NMAP is None, reason="nmap is installed by .ci/run")
def test_nmap_finds_no_open_relay_on_the_defaults(gateway, sink):
    out = nmap_relay(gateway.port)
    assert "Server doesn't seem to be an open relay, all tests failed" in out, out
    assert "open relay (" not in out


@pytest.mark.skipif(NMAP is None, reason="nmap is installed by .ci/run")
def test_nmap_finds_no_open_relay_when_its_server_name_is_a_local_domain(make_gateway, sink):
    """The banner's name (which nmap builds its tricks on: `relaytest%nmap.scanme.org@NAME`,
    `nmap.scanme.org!relaytest@NAME`, `relaytest@nmap.scanme.org@NAME`, `@NAME:relaytest@…`) is
    itself a protected domain with a route of its own: the sender-routed local parts must be
    refused, as Postfix's allow_untrusted_routing = no does, or the mail server behind us would be
    the open relay."""
    g = make_gateway(sink.port, {
        "relay.domains": f"example.test, mx.example.test:127.0.0.1:{sink.port}",
        "policy.trusted_networks": "", "dns.enabled": "0", "scan.enabled": "0",
        "policy.pregreet_wait_ms": "0"}, name="routed")
    for domain in ("nmap.scanme.org", "elsewhere.example"):
        out = nmap_relay(g.port, f"smtp-open-relay.domain={domain}")
        assert "Server doesn't seem to be an open relay, all tests failed" in out, out
    assert sink.stats()["messages"] == 0
