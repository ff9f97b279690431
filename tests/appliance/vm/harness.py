"""Helpers of the boot tests: SSH into a guest as the seed's admin user, seeds to write, and the
record of measured figures (boot times) that appliance-image/README.md reports."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

from guest import DOWNSTREAM, HOST_AS_SEEN

# The suite's helpers (tests/conftest.py), loaded by path: `import conftest` here would find this
# folder's own conftest.py.
_spec = importlib.util.spec_from_file_location("mxguard_suite", Path(__file__).resolve().parents[2] / "conftest.py")
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)
wait_for, MXBLAST, ROOT = suite.wait_for, suite.MXBLAST, suite.ROOT

RESULTS = Path(os.environ.get("MXGUARD_APPLIANCE_RESULTS", "/tmp/mxguard-appliance-results.jsonl"))


def record(**fields):
    with RESULTS.open("a") as f:
        f.write(json.dumps(fields) + "\n")


def ssh(guest, key, *cmd, check=True, timeout=60):
    """Runs `cmd` in the guest as mxadmin (sudo for root), through the forwarded SSH port."""
    args = ["ssh", "-i", str(key), "-p", str(guest.ssh), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "mxadmin@127.0.0.1", *cmd]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        # qemu's forward accepts at once even while the guest reboots: the SSH banner never comes.
        if check:
            raise
        return subprocess.CompletedProcess(args, 255, "", f"no answer in {timeout} s")
    if check:
        assert r.returncode == 0, (cmd, r.returncode, r.stdout, r.stderr, guest.console_text()[-2000:])
    return r


# The setup code as mxguard-first-admin prints it on the consoles.
SETUP_CODE = r"mxguard setup code: ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})"


def console_post(guest, path, fields):
    """POSTs a form to the guest's console (HTTPS, self-signed) through the forwarded port: the
    status and the session cookie it set, if any."""
    import http.client
    import ssl
    import urllib.parse
    c = http.client.HTTPSConnection("127.0.0.1", guest.console, timeout=60, context=ssl._create_unverified_context())
    try:
        c.request("POST", path, body=urllib.parse.urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Set-Cookie") or ""
    finally:
        c.close()


def journal(guest, key, unit="mxguard"):
    """The last of a unit's journal, for a failure's message (empty when SSH does not answer)."""
    r = ssh(guest, key, "sudo", "journalctl", "-b", "-u", unit, "--no-pager", "-n", "60", check=False)
    return r.stdout + r.stderr


def seed_text(serial=1, key=None, domains=("example.test",), extra_knobs="", admin=None):
    """A seed as an ISP would write one for the test network: its domains routed to the host's
    sink, the host (as the guest sees it) an admin network, and knobs that keep the gateway from
    waiting on DNS the restricted network does not have. `admin`: (login, password) of the
    superadmin, given to the seed as `mxguard user hash` makes it; none: a setup code at boot."""
    lines = [f"serial = {serial}", "hostname = mx1.example.test", "[network]", "mode = dhcp", "[relay]"]
    lines += [f"domain = {d}:{DOWNSTREAM}:25" for d in domains]
    lines += ["[admin]", f"network = {HOST_AS_SEEN}/32"]
    if admin:
        phc = subprocess.run([str(suite.MXGUARD), "user", "hash"], input=admin[1] + "\n", capture_output=True, text=True, check=True, timeout=60)
        lines += [f"login = {admin[0]}", f"password_hash = {phc.stdout.strip()}"]
    if key:
        lines.append(f"ssh_key = {Path(str(key) + '.pub').read_text().strip()}")
    lines += ["[knobs]",
              # The host's forwarded connections come from slirp's gateway: the ISP's own relay here.
              f"policy.trusted_networks = {HOST_AS_SEEN}/32",
              "dns.timeout_ms = 500", "dns.attempts = 1",
              "smtp.hostname = mx1.example.test"]
    return "\n".join(lines) + "\n" + extra_knobs
