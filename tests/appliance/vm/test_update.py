"""Updates with rollback, booted: an update signed by another key is refused; the second image's
update file (another version) staged with mxguard-update boots the new version on the old data
(mail spooled before the reboot is delivered after it); the admin rolls back to the first
version (`--rollback`); then an update whose mxguard cannot start is tried, abandoned by the boot
loader after its tries, and the previous slot runs again, saying why."""

import re
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from guest import Guest, seed_volume  # noqa: E402
from harness import ROOT, SETUP_CODE, console_post, record, seed_text, ssh, wait_for  # noqa: E402

KEYDIR = "/var/lib/mxguard-build/update-key"
UPDATE_TOOL = ROOT / "target/release/mxguard-update"


def send(g, subject):
    with smtplib.SMTP("127.0.0.1", g.smtp, timeout=60) as c:
        c.ehlo("client.example")
        c.sendmail("ann@sender.example", ["u@example.test"],
                   f"From: ann@sender.example\r\nTo: u@example.test\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())


def subjects(sink):
    return {m.group(1).decode() for m in (re.search(rb"^Subject: (.*?)\r?$", msg, re.M) for msg in sink.messages()) if m}


def scp(g, key, src, dst):
    subprocess.run(["scp", "-q", "-i", str(key), "-P", str(g.ssh), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", str(src), f"mxadmin@127.0.0.1:{dst}"], check=True, timeout=300)


def version(g, key):
    return ssh(g, key, "cat", "/usr/lib/mxguard/image-version").stdout.strip()


def wait_version(g, key, want, timeout=400):
    """Waits through a reboot (or several) until the guest answers SSH with image version `want`."""
    def now():
        r = ssh(g, key, "cat", "/usr/lib/mxguard/image-version", check=False, timeout=30)
        return r.returncode == 0 and r.stdout.strip() == want
    wait_for(now, timeout=timeout, what=f"version {want} running")


def broken_update(images, tmp_path):
    """The second image's root with an mxguard that exits at once, signed with the build's key."""
    update = next(images["next"].parent.glob("*.update"))
    data = update.read_bytes()
    root = data[data.index(b"\n\n") + 2:]
    (tmp_path / "root.squashfs").write_bytes(root)
    subprocess.run(["unsquashfs", "-q", "-no-progress", "-d", str(tmp_path / "root"), str(tmp_path / "root.squashfs")], check=True)
    mxguard = tmp_path / "root/usr/sbin/mxguard"
    mxguard.unlink()
    mxguard.write_text("#!/bin/sh\necho 'mxguard: this build cannot start' >&2\nexit 1\n")
    mxguard.chmod(0o755)
    version = (tmp_path / "root/usr/lib/mxguard/image-version").read_text().strip() + "-broken"
    (tmp_path / "root/usr/lib/mxguard/image-version").write_text(version + "\n")
    subprocess.run(["mksquashfs", str(tmp_path / "root"), str(tmp_path / "broken.squashfs"), "-comp", "zstd", "-Xcompression-level", "3",
                    "-noappend", "-quiet", "-no-progress"], check=True, capture_output=True)
    out = tmp_path / "broken.update"
    subprocess.run([str(UPDATE_TOOL), "sign", KEYDIR, str(tmp_path / "broken.squashfs"), version, str(out)], check=True)
    return out, version


def foreign_update(images, tmp_path):
    """The second image's root signed with a key the images were not built with."""
    key = tmp_path / "other-key"
    subprocess.run([str(UPDATE_TOOL), "keygen", str(key)], check=True)
    data = next(images["next"].parent.glob("*.update")).read_bytes()
    (tmp_path / "foreign.squashfs").write_bytes(data[data.index(b"\n\n") + 2:])
    subprocess.run([str(UPDATE_TOOL), "sign", str(key), str(tmp_path / "foreign.squashfs"), "9.9.9", str(tmp_path / "foreign.update")], check=True)
    return tmp_path / "foreign.update"


def test_an_update_runs_on_the_old_data_and_a_failing_one_rolls_back(images, sink, ssh_key, guests, tmp_path):
    first = images["first"]
    next_update = next(images["next"].parent.glob("*.update"))
    v_next = re.match(r"mxguard-(.*)\.update$", next_update.name).group(1)
    # The superadmin given by the seed, as a password hash: no setup code is printed.
    admin = {"email": "postmaster", "password": "the seed's password"}
    seed = seed_volume(tmp_path / "seed.img", seed_text(key=ssh_key, admin=tuple(admin.values())))
    g = Guest(first, tmp_path / "vm", seed=seed, sink_port=sink.port)
    guests.append(g)
    g.start()
    g.wait_greeting(timeout=180)
    g.wait_console(r"mxguard-first-admin: superadmin postmaster from seed serial 1")
    assert console_post(g, "/login", admin)[0] == 303
    assert not re.search(SETUP_CODE, g.console_text())
    v_first = version(g, ssh_key)
    assert v_first != v_next
    machine_id = ssh(g, ssh_key, "cat", "/etc/machine-id").stdout.strip()
    send(g, "before the update")
    wait_for(lambda: "before the update" in subjects(sink), timeout=60, what="mail before the update")
    ssh(g, ssh_key, "sudo", "touch", "/var/lib/mxguard/kept-across-updates")

    # Signed by another key: refused, nothing written.
    scp(g, ssh_key, foreign_update(images, tmp_path), "/var/tmp/foreign.update")
    r = ssh(g, ssh_key, "sudo", "mxguard-update", "/var/tmp/foreign.update", check=False)
    assert r.returncode != 0 and "does not verify" in r.stderr, (r.stdout, r.stderr)
    assert "slot b: empty" in ssh(g, ssh_key, "sudo", "mxguard-update", "--status").stdout

    scp(g, ssh_key, next_update, "/var/tmp/next.update")
    staged = ssh(g, ssh_key, "sudo", "mxguard-update", "/var/tmp/next.update").stdout
    assert f"slot b holds {v_next}" in staged, staged
    status = ssh(g, ssh_key, "sudo", "mxguard-update", "--status").stdout
    assert "running: slot a" in status and "staged: boots next" in status, status

    # Mail waiting in the spool at the reboot (the servers behind are down) is delivered after it.
    sink.stop()
    send(g, "spooled across the update")
    ssh(g, ssh_key, "sudo", "systemctl", "reboot", check=False)
    t0 = time.monotonic()
    wait_version(g, ssh_key, v_next)
    record(what="update: reboot into the new slot to SSH", seconds=round(time.monotonic() - t0, 1))
    sink.start()
    wait_for(lambda: "spooled across the update" in subjects(sink), timeout=120, what="spooled mail after the update")
    assert ssh(g, ssh_key, "sudo", "test", "-e", "/var/lib/mxguard/kept-across-updates", check=False).returncode == 0
    # The accounts are data too: the superadmin logs in on the new version, and the seed is not
    # applied again (same serial).
    assert console_post(g, "/login", admin)[0] == 303
    # The same machine ID after the reboot (the root's file is empty; the initramfs puts the
    # first boot's in place), so the journal is one directory and the last boot's log at hand.
    assert ssh(g, ssh_key, "cat", "/etc/machine-id").stdout.strip() == machine_id
    boots = ssh(g, ssh_key, "sudo", "journalctl", "--list-boots", "--no-pager").stdout.strip().splitlines()
    assert len(boots) >= 2, boots
    assert ssh(g, ssh_key, "sudo", "ls", "/var/log/journal").stdout.split() == [machine_id]
    # The slot is blessed once mxguard is ready (boot-complete.target, systemd-bless-boot).
    wait_for(lambda: "slot b: version " + v_next in (s := ssh(g, ssh_key, "sudo", "mxguard-update", "--status").stdout)
             and re.search(r"slot b: .*: good", s), timeout=120, what="slot b marked good")

    # The admin's rollback: the previous slot (a, the first version), known good, boots again; its
    # data is the same data.
    out = ssh(g, ssh_key, "sudo", "mxguard-update", "--rollback").stdout
    assert f"slot a ({v_first}) boots at the next reboot" in out, out
    ssh(g, ssh_key, "sudo", "systemctl", "reboot", check=False)
    wait_version(g, ssh_key, v_first)
    wait_for(lambda: re.search(r"slot a: .*: good", ssh(g, ssh_key, "sudo", "mxguard-update", "--status").stdout), timeout=120, what="slot a marked good")
    assert console_post(g, "/login", admin)[0] == 303
    g.wait_greeting(timeout=120)
    send(g, "after the admin's rollback")
    wait_for(lambda: "after the admin's rollback" in subjects(sink), timeout=60, what="mail after the admin's rollback")

    # An update whose mxguard cannot start: tried, abandoned, the previous slot (a) runs again.
    broken, v_broken = broken_update(images, tmp_path)
    scp(g, ssh_key, broken, "/var/tmp/broken.update")
    assert "slot b holds" in ssh(g, ssh_key, "sudo", "mxguard-update", "/var/tmp/broken.update").stdout
    console_mark = len(g.console_text())
    ssh(g, ssh_key, "sudo", "systemctl", "reboot", check=False)
    t0 = time.monotonic()
    g.wait_console(r"this slot is on trial: rebooting", timeout=300, start=console_mark)
    # Three failing boots and the good one under emulation took 650-690 s; one run missed a
    # 600 s bound with fuzzing beside it. Bounded still, with room.
    wait_version(g, ssh_key, v_first, timeout=1200)
    record(what="rollback: failing update to the previous slot running again", seconds=round(time.monotonic() - t0, 1))
    status = ssh(g, ssh_key, "sudo", "mxguard-update", "--status").stdout
    assert "running: slot a" in status and "last update rolled back: slot b" in status, status
    assert re.search(rf"slot b version {re.escape(v_broken)}: mxguard not ready", status), status
    g.wait_greeting(timeout=120)
    send(g, "after the rollback")
    wait_for(lambda: "after the rollback" in subjects(sink), timeout=60, what="mail after the rollback")
    # An abandoned slot is nothing to roll back to.
    r = ssh(g, ssh_key, "sudo", "mxguard-update", "--rollback", check=False)
    assert r.returncode != 0 and "abandoned" in r.stderr, (r.stdout, r.stderr)
