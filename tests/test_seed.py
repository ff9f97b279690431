"""The appliance seed through the real binary: `mxguard seed check` tells every fault as
FILE:LINE: reason and exits non-zero; `mxguard seed render` writes nothing for a bad seed and, for
a good one, files that the real tools accept (nftables' own checker, the knob loader)."""

import shutil
import subprocess

import pytest

from conftest import MXGUARD

GOOD = """serial = 2
hostname = mx1.example.net
[network]
mode = static
address = 192.0.2.10/24
gateway = 192.0.2.1
dns = 192.0.2.53
[relay]
domain = example.org:127.0.0.1:2526
[admin]
network = 198.51.100.0/24
network = 2001:db8:1::/48
ssh_key = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example.net
[knobs]
verdict.quarantine_score = 9
"""


def run(*args):
    return subprocess.run([str(MXGUARD), "seed", *args], capture_output=True, text=True, timeout=30)


def test_a_bad_seed_is_told_line_by_line_and_nothing_is_written(tmp_path):
    bad = GOOD.replace("gateway = 192.0.2.1", "gateway = 192.0.2").replace("verdict.quarantine_score = 9", "verdict.quarantine_score = lots")
    (tmp_path / "seed.ini").write_text(bad)
    r = run("check", str(tmp_path / "seed.ini"))
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if "seed.ini:" in l]
    assert any(":6: " in l and "192.0.2" in l for l in lines) and any(":15: " in l and "lots" in l for l in lines), r.stderr
    r = run("render", str(tmp_path / "seed.ini"), str(tmp_path / "root"))
    assert r.returncode != 0 and not (tmp_path / "root").exists()


def test_a_good_seed_renders_files_the_real_tools_accept(tmp_path):
    (tmp_path / "seed.ini").write_text(GOOD)
    assert run("check", str(tmp_path / "seed.ini")).returncode == 0
    r = run("render", str(tmp_path / "seed.ini"), str(tmp_path / "root"))
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    assert (root / "etc/hostname").read_text() == "mx1.example.net\n"
    # The knob file loads in the gateway as a second --config (explain needs no running gateway).
    msg = tmp_path / "m.eml"
    msg.write_text("From: a@b.example\r\nTo: u@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
    r = subprocess.run([str(MXGUARD), "explain", str(msg), "--config", str(root / "etc/mxguard/seed.conf")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if shutil.which("nft") is None:
        pytest.skip("nft (nftables) not installed: the ruleset's syntax is not checked here")
    r = subprocess.run(["nft", "-c", "-f", str(root / "etc/nftables.conf")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_the_seeds_superadmin_ends_the_setup_code(tmp_path):
    """The seed's superadmin: `mxguard user hash` makes the PHC string a seed carries; render puts
    it, with the login, in `admin` readable by root only; the first-admin unit's `user add
    --password-hash` makes the account, and from then on `setup-code` issues no code."""
    state = ["--set", f"state.dir={tmp_path / 'state'}"]
    (tmp_path / "state").mkdir()
    hashed = subprocess.run([str(MXGUARD), "user", "hash"], input="the seeded password\n", capture_output=True, text=True, timeout=30)
    assert hashed.returncode == 0 and hashed.stdout.startswith("$argon2id$v=19$"), hashed.stderr
    phc = hashed.stdout.strip()
    short = subprocess.run([str(MXGUARD), "user", "hash"], input="short\n", capture_output=True, text=True, timeout=30)
    assert short.returncode != 0 and "8 characters" in short.stderr

    (tmp_path / "seed.ini").write_text(GOOD.replace("[admin]\n", f"[admin]\nlogin = postmaster\npassword_hash = {phc}\n"))
    r = run("render", str(tmp_path / "seed.ini"), str(tmp_path / "root"))
    assert r.returncode == 0, r.stderr
    admin = tmp_path / "root" / "admin"
    assert admin.read_text() == f"postmaster\n{phc}\n"
    assert admin.stat().st_mode & 0o777 == 0o600
    assert phc not in (tmp_path / "root/etc/mxguard/seed.conf").read_text()

    code = subprocess.run([str(MXGUARD), "setup-code", *state], capture_output=True, text=True, timeout=30)
    assert code.returncode == 0 and len(code.stdout.strip()) == 14, (code.stdout, code.stderr)
    assert (tmp_path / "state" / "setup-code").exists()
    login, phc_line = admin.read_text().splitlines()
    add = subprocess.run([str(MXGUARD), "user", "add", login, "--role", "superadmin", "--password-hash", *state],
                         input=phc_line + "\n", capture_output=True, text=True, timeout=30)
    assert add.returncode == 0, add.stderr
    bad = subprocess.run([str(MXGUARD), "user", "add", "x", "--role", "superadmin", "--password-hash", *state],
                         input="the seeded password\n", capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "PHC" in bad.stderr
    code = subprocess.run([str(MXGUARD), "setup-code", *state], capture_output=True, text=True, timeout=30)
    assert code.returncode == 0 and code.stdout == "", code.stdout
    assert not (tmp_path / "state" / "setup-code").exists(), "the waiting code is withdrawn"
