"""The Debian package on a plain Debian 12 root: `appliance-image/make-deb` builds it from this
tree; dpkg installs it offline into a debootstrap minbase that holds only the dependencies the
package declares (so a missing one fails the install); then the service's own command runs as the
unit runs it (user mxguard, only CAP_NET_BIND_SERVICE, the unit's ExecStart), tells readiness on
$NOTIFY_SOCKET, greets on a privileged port, refuses relay until a domain is configured, relays
to the package's own mxblast sink once one is, and stops on SIGTERM."""

import os
import re
import shutil
import sys
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the suite's helpers
from conftest import ROOT, free_port, wait_for  # noqa: E402
import debian  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("dpkg-shlibdeps"),
                                reason="needs root, debootstrap and dpkg-dev (installed by .ci/run)")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([str(ROOT / "appliance-image/make-deb"), str(out)], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def root(deb, tmp_path):
    r = debian.Root(debian.base(debian.depends_of(deb)), tmp_path / "root")
    yield r
    r.close()


def low_port():
    """A free port below 1024 on loopback (binding one needs CAP_NET_BIND_SERVICE)."""
    for p in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port below 1024")


def unit_value(text, key):
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", text, re.M)]


def test_package_installs_offline_and_the_service_runs_as_its_unit_says(deb, root, tmp_path):
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for f in ["./usr/sbin/mxguard", "./usr/bin/mxblast", "./lib/systemd/system/mxguard.service", "./etc/mxguard/mxguard.conf",
              "./usr/share/man/man8/mxguard.8.gz", "./usr/share/man/man5/mxguard.conf.5.gz", "./usr/share/man/man1/mxblast.1.gz"]:
        assert f in contents, f
    assert "/etc/mxguard/mxguard.conf" in subprocess.run(["dpkg-deb", "-f", str(deb), "Conffiles"], capture_output=True, text=True).stdout or \
        "/etc/mxguard/mxguard.conf" in subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True).stdout.decode("latin-1")
    deps = debian.depends_of(deb)
    assert "libhyperscan5" in deps and any(d.startswith("libclamav") for d in deps), deps

    shutil.copy(deb, root.path / "tmp/mxguard.deb")
    r = root.run("dpkg", "-i", "/tmp/mxguard.deb")
    assert r.returncode == 0, r.stdout + r.stderr
    assert root.run("dpkg-query", "-W", "-f=${Status}", "mxguard").stdout == "install ok installed"
    user = root.run("getent", "passwd", "mxguard").stdout
    assert user and user.split(":")[6].strip() in ("/usr/sbin/nologin", "/bin/false"), user
    st = os.stat(root.path / "var/lib/mxguard")
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (int(user.split(":")[2]), "0o750")
    # The man pages render without a warning.
    for page in ["man8/mxguard.8.gz", "man5/mxguard.conf.5.gz", "man1/mxblast.1.gz"]:
        m = subprocess.run(f"zcat {root.path}/usr/share/man/{page} | groff -man -Tutf8 -wmac -z", shell=True, capture_output=True, text=True)
        assert m.returncode == 0 and not m.stderr, (page, m.stderr)

    unit = (root.path / "lib/systemd/system/mxguard.service").read_text()
    assert unit_value(unit, "User") == ["mxguard"] and unit_value(unit, "Type") == ["notify"]
    assert unit_value(unit, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"] == unit_value(unit, "CapabilityBoundingSet")
    assert unit_value(unit, "ProtectSystem") == ["strict"]
    exec_start = unit_value(unit, "ExecStart")[0].split()

    # The admin's edit of the conffile: loopback ports free here instead of 25 and the defaults.
    smtp, metrics, console, sink_port = low_port(), *[free_port() for _ in range(3)]
    conf = root.path / "etc/mxguard/mxguard.conf"
    conf.write_text(conf.read_text().replace("smtp.listen = 0.0.0.0:25", f"smtp.listen = 127.0.0.1:{smtp}")
                    + f"metrics.listen = 127.0.0.1:{metrics}\nconsole.listen = 127.0.0.1:{console}\n")

    def start(caps=True):
        notify = root.path / "run/notify.sock"
        notify.unlink(missing_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(notify))
        os.chmod(notify, 0o777)
        capset = "-all,+net_bind_service" if caps else "-all"
        cmd = ["chroot", str(root.path), "setpriv", "--reuid=mxguard", "--regid=mxguard", "--init-groups",
               f"--inh-caps={capset}", f"--ambient-caps={capset}", f"--bounding-set={capset}", "--", *exec_start]
        p = subprocess.Popen(cmd, env={"NOTIFY_SOCKET": "/run/notify.sock", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p, s

    # Without the capability a port below 1024 is refused, and the start fails with the reason.
    p, s = start(caps=False)
    _, err = p.communicate(timeout=60)
    s.close()
    assert p.returncode != 0 and str(smtp) in err, (p.returncode, err)

    sink = subprocess.Popen(["chroot", str(root.path), "/usr/bin/mxblast", "sink", "--listen", f"127.0.0.1:{sink_port}",
                             "--stats", "/tmp/sink.json"])
    try:
        p, s = start()
        try:
            s.settimeout(60)
            assert s.recv(256).startswith(b"READY=1")
            with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as c:
                c.ehlo("client.example")
                c.mail("ann@sender.example")
                code, text = c.rcpt("u@example.test")
                assert code in (550, 554) and b"relay" in text.lower(), (code, text)
            os.kill(p.pid, signal.SIGTERM)
            assert s.recv(256).startswith(b"STOPPING=1")
            assert p.wait(timeout=60) == 0, p.stderr.read()[-2000:]
        finally:
            if p.poll() is None:
                p.kill()
            s.close()
        # A domain named: relayed to the route, with the verdict's fields.
        conf.write_text(conf.read_text() + f"relay.domains = example.test:127.0.0.1:{sink_port}\n")
        p, s = start()
        try:
            s.settimeout(60)
            assert s.recv(256).startswith(b"READY=1")
            msg = (f"From: <ann@sender.example>\r\nTo: <u@example.test>\r\nSubject: hello\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
                   f"Message-ID: <{time.time_ns()}@sender.example>\r\n\r\nFirst mail through the package.\r\n")
            with smtplib.SMTP("127.0.0.1", smtp, timeout=10, local_hostname="client.example") as c:
                c.sendmail("ann@sender.example", ["u@example.test"], msg)
            wait_for(lambda: (root.path / "tmp/sink.json").exists() and '"messages":1' in (root.path / "tmp/sink.json").read_text().replace(" ", ""),
                     timeout=30, what="the message at the package's sink")
            os.kill(p.pid, signal.SIGTERM)
            assert p.wait(timeout=60) == 0
        finally:
            if p.poll() is None:
                p.kill()
            s.close()
        # Written where the unit lets it write, by its user.
        log = root.path / "var/log/mxguard/mxguard.log"
        assert log.exists() and os.stat(log).st_uid == int(user.split(":")[2])
        assert (root.path / "var/lib/mxguard/lists").is_dir() or any((root.path / "var/lib/mxguard").iterdir())
    finally:
        sink.terminate()
        sink.wait(timeout=30)

    # Removed: the service's files go, the state (spool, quarantine) stays, even on purge.
    r = root.run("dpkg", "--purge", "mxguard")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (root.path / "usr/sbin/mxguard").exists() and not (root.path / "etc/mxguard/mxguard.conf").exists()
    assert (root.path / "var/lib/mxguard").is_dir() and not (root.path / "var/log/mxguard").exists()

