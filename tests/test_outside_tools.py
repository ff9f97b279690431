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


TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

# What a self-signed certificate on loopback is bound to show, and nothing else: no chain of
# trust, a name that is not the address scanned, no CRL or OCSP, no CAA record for 127.0.0.1.
EXPECTED = {"cert_chain_of_trust", "cert_trust", "cert_revocation", "DNS_CAArecord"}
# testssl's own failures to run a check (severity WARN, "check failed, pls report"): not findings.
TOOL_WARNINGS = {"sessionresumption_ID", "sessionresumption_ticket"}


def start_testssl(target, out, *extra):
    args = [TESTSSL, "--quiet", "--color", "0", "--warnings", "batch", "--ip", "one",
            "--jsonfile", str(out), *extra, target]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def findings(path):
    return {f["id"]: f for f in json.loads(path.read_text())}


def unexpected(found):
    return {i: (f["severity"], f["finding"]) for i, f in found.items()
            if f["severity"] not in ("OK", "INFO", "DEBUG") and i not in EXPECTED
            and not (i in TOOL_WARNINGS and f["severity"] == "WARN")}


@pytest.mark.skipif(TESTSSL is None, reason="testssl.sh is installed by .ci/run")
def test_testssl_finds_nothing_but_the_self_signed_certificate(make_gateway, sink, tmp_path):
    """testssl.sh's full run against STARTTLS on the SMTP port, implicit TLS and the console (in
    parallel: each is mostly waiting on openssl): TLS 1.2 and 1.3 only, AEAD suites with forward
    secrecy in the server's order, no known vulnerability, HSTS on the console; the only findings
    worse than INFO are those of a self-signed certificate. With smtp.tls_min_version = 13, TLS 1.2
    is no longer offered."""
    tls_port = free_port()
    g = make_gateway(sink.port, {"smtp.tls_listen": f"127.0.0.1:{tls_port}"}, name="tls")
    runs = {
        "starttls": start_testssl(f"127.0.0.1:{g.port}", tmp_path / "starttls.json", "-t", "smtp"),
        "implicit": start_testssl(f"127.0.0.1:{tls_port}", tmp_path / "implicit.json"),
        # The login page: the console's / redirects there (303).
        "console": start_testssl(f"https://127.0.0.1:{g.console_port}/login", tmp_path / "console.json"),
    }
    for name, p in runs.items():
        # testssl's status counts its findings; 242 and above are its own errors.
        assert p.wait(timeout=900) < 242, name
    for name in runs:
        found = findings(tmp_path / f"{name}.json")
        assert not unexpected(found), (name, unexpected(found))
        for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            assert found[proto]["finding"].startswith("not offered"), (name, proto, found[proto])
        for proto in ("TLS1_2", "TLS1_3"):
            assert found[proto]["finding"].startswith("offered"), (name, proto, found[proto])
        assert found["cert_chain_of_trust"]["finding"].startswith("failed (self signed)"), name
        assert found["cipher_order"]["severity"] in ("OK", "INFO"), found["cipher_order"]
    hsts = findings(tmp_path / "console.json")["HSTS_time"]
    assert hsts["severity"] == "OK" and "31536000" in hsts["finding"], hsts

    g.stop()
    g13 = make_gateway(sink.port, {"smtp.tls_min_version": "13"}, name="tls13")
    p = start_testssl(f"127.0.0.1:{g13.port}", tmp_path / "tls13.json", "-t", "smtp", "-p")
    assert p.wait(timeout=300) < 242
    found = findings(tmp_path / "tls13.json")
    assert found["TLS1_2"]["finding"].startswith("not offered"), found["TLS1_2"]
    assert found["TLS1_3"]["finding"].startswith("offered"), found["TLS1_3"]
