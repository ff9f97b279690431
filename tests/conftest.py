"""Fixtures for end-to-end tests with real parts: the real `mxguard` binary, real SMTP clients
(smtplib, swaks, raw sockets), and real downstream servers (`mxblast sink`, Postfix's smtp-sink).

Every process a test starts listens on loopback only, on ports picked free for the test, and is
stopped (and checked for panics) when the test ends.
"""

import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
PROFILE = os.environ.get("MXGUARD_TEST_PROFILE", "release")
MXGUARD = TARGET / PROFILE / "mxguard"
MXBLAST = TARGET / PROFILE / "mxblast"


_ports_given = set()


def free_port():
    """A loopback port nothing listens on, never one handed out before in this run: the kernel
    may give a just-closed port again, and the gateway's and the sink's listeners (SO_REUSEPORT)
    would then share it without an error, each taking part of the other's connections."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        # An SMTP server is up when it greets: a bare connect could reach the listening socket
        # of a process just killed, which the kernel closes only once its io_uring is torn down.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.settimeout(2)
                if s.makefile("rb").readline().startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def raw(port, timeout=10, src=None):
    """A raw client socket to 127.0.0.1:`port` (from loopback address `src` if given) and a
    binary reader on it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    return s, s.makefile("rb")


def reply(f):
    """Reads one (possibly multi-line) SMTP reply; returns (code, [lines])."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        lines.append(line.decode(errors="replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), lines


def send_message(port, data, mail_from, rcpt="u@example.test", src="127.0.0.77"):
    """One SMTP transaction with smtplib; (code, text) of the end of data, or of the refusal."""
    c = smtplib.SMTP(timeout=60, source_address=(src, 0), local_hostname="client.example")
    c.connect("127.0.0.1", port)
    try:
        c.ehlo("client.example")
        c.mail(mail_from)
        c.rcpt(rcpt)
        return c.data(data)
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error
    except smtplib.SMTPRecipientsRefused as e:
        return next(iter(e.recipients.values()))
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class Sink:
    """`mxblast sink` with its stats file and saved messages."""

    def __init__(self, tmp, port=None, extra=()):
        self.port = port or free_port()
        self.dir = tmp / f"sink-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stats_file = self.dir / "stats.json"
        self.save = self.dir / "mail"
        self.extra = list(extra)
        self.proc = None

    def start(self):
        args = [str(MXBLAST), "sink", "--listen", f"127.0.0.1:{self.port}", "--stats", str(self.stats_file),
                "--save", str(self.save), *self.extra]
        self.log = open(self.dir / "sink.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stats(self):
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {"messages": 0, "duplicates": 0, "unique_by_run": {}}

    def messages(self):
        if not self.save.exists():
            return []
        return [p.read_bytes() for p in sorted(self.save.glob("*.eml"))]


class Gateway:
    """The real `mxguard` binary on free ports with its own state directory."""

    def __init__(self, tmp, downstream_port, knobs=None, name="gw"):
        self.state = tmp / name
        self.port = free_port()
        self.metrics_port = free_port()
        self.console_port = free_port()
        self.knobs = {
            "state.dir": str(self.state),
            "smtp.listen": f"127.0.0.1:{self.port}",
            "metrics.listen": f"127.0.0.1:{self.metrics_port}",
            "console.listen": f"127.0.0.1:{self.console_port}",
            "relay.default_route": f"127.0.0.1:{downstream_port}",
            "relay.domains": "example.test",
            "smtp.hostname": "mx.example.test",
            "log.stderr": "0",
            # Tests read the log as they go; test_ops checks the default cadence separately.
            "log.flush_ms": "0",
            "relay.retry_min_s": "1",
            "relay.retry_max_s": "2",
            "relay.conn_idle_s": "1",
            "smtp.cores": "2",
            # ClamAV is tested in test_av.py with its own signatures; elsewhere it is off so a
            # machine without /var/lib/clamav does not add AV_UNCHECKED to every verdict.
            "av.enabled": "0",
            # The daily digest goes out in console.digest_hour (07 UTC by default) by the wall
            # clock: a test that held mail and (re)started the gateway in that hour found a
            # digest in its sink (test_quarantined_mail_survives_a_crash…, under tests/repeat at
            # 07:46 UTC). Tests send digests explicitly (`mxguard digest`).
            "console.digest_hour": "-1",
            # Each core keeps a pre-zeroed segment and a spare: at the 32 MiB default that is
            # 128 MiB of disk a gateway, 16 GB for one pass of the suite (tests/repeat filled a
            # 250 GB disk). 4 MiB is plenty for test traffic (a bigger commit gets a file of its own).
            "spool.segment_bytes": "4194304",
        }
        self.knobs.update(knobs or {})
        self.proc = None
        # A command the gateway runs under (e.g. unshare with a private mount), or none.
        self.wrapper = []

    def write_lists(self, files):
        """Writes `files` ({name: text}) into the gateway's lists directory (state.dir/lists),
        before it starts or while it runs (the lists reload)."""
        lists = self.state / "lists"
        lists.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (lists / name).write_text(text)

    @property
    def log_file(self):
        return self.state / "mxguard.log"

    def start(self, wait_idle=True):
        """Starts the gateway and waits until it greets; with `wait_idle`, also until the probe
        connection is gone (not while clients are sending: their connections keep it above 0)."""
        self.state.mkdir(parents=True, exist_ok=True)
        conf = self.state / "test.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in self.knobs.items()))
        self.stderr = open(self.state / "stderr.log", "ab")
        self.proc = subprocess.Popen([*self.wrapper, str(MXGUARD), "run", "--config", str(conf)], stdout=self.stderr,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        # wait_port's probe holds a connection slot until the gateway sees it close; tests that count
        # slots (per-IP limits) must not race it.
        if wait_idle:
            wait_for(self._no_connections, timeout=10, what="probe connection released")
        return self

    def _no_connections(self):
        try:
            return self.metrics().get("mxguard_connections_current") == 0
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def events(self, name=None):
        if not self.log_file.exists():
            return []
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if name is None or e.get("event") == name:
                out.append(e)
        return out

    def wait_events(self, name, pred=lambda e: True, n=1, timeout=10):
        """The `name` events matching `pred`, once there are at least `n` of them: the log is
        written by its own thread, a moment after the reply the test saw."""
        return wait_for(lambda: (lambda ev: ev if len(ev) >= n else None)([e for e in self.events(name) if pred(e)]),
                        timeout=timeout, what=f"{n} {name} event(s)")

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                values[k] = float(v)
        return values

    def sysctl(self, *args, check=True):
        conf = self.state / "test.conf"
        return subprocess.run([str(MXGUARD), "sysctl", "--config", str(conf), *args], capture_output=True,
                              text=True, check=check, timeout=10)

    def stderr_text(self):
        p = self.state / "stderr.log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture
def sink(tmp_path):
    s = Sink(tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def make_gateway(tmp_path):
    made = []

    def make(downstream_port, knobs=None, name="gw", start=True):
        g = Gateway(tmp_path, downstream_port, knobs, name)
        made.append(g)
        return g.start() if start else g

    yield make
    for g in made:
        g.stop()
        assert "panicked" not in g.stderr_text(), g.stderr_text()[-3000:]


@pytest.fixture
def gateway(make_gateway, sink):
    return make_gateway(sink.port)


def blast(port, *args, timeout=120):
    """Runs `mxblast send` against `port`; returns its JSON summary."""
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    r = subprocess.run([str(MXBLAST), "send", "--server", f"127.0.0.1:{port}", "--json", out, *args],
                       capture_output=True, text=True, timeout=timeout)
    try:
        with open(out) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = {}
    os.unlink(out)
    data["_stdout"], data["_stderr"], data["_rc"] = r.stdout, r.stderr, r.returncode
    return data


@pytest.fixture
def dns():
    """The project's DNS server (dnsserver.py) on a free loopback port, empty zones."""
    from dnsserver import TestDns
    d = TestDns(free_port())
    yield d
    d.stop()


def policy_knobs(dns, **extra):
    """Knobs for a gateway whose loopback clients go through the policy stage (content scanning
    off), asking `dns`.
    The pregreet wait is off unless a test asks for it: every new client address would wait."""
    k = {"policy.trusted_networks": "", "dns.nameservers": f"127.0.0.1:{dns.port}", "dns.timeout_ms": "500",
         "dns.attempts": "1", "lists.check_s": "1", "policy.pregreet_wait_ms": "0",
         # The policy stage alone: content symbols of the tests' minimal messages would move the
         # totals these tests assert (test_content.py covers the stages together).
         "scan.enabled": "0"}
    k.update({name.replace("__", "."): v for name, v in extra.items()})
    return k



@pytest.fixture
def postgres_server():
    """A PostgreSQL server of the test's own on loopback (tests/postgres.py): (its URL, its
    directory for pause/resume)."""
    import postgres
    import shutil
    import tempfile
    # Under /tmp itself: as root the server runs as the postgres user, who cannot enter pytest's
    # private temporary directories.
    root = tempfile.mkdtemp(prefix="mxguard-pg-")
    url = postgres.start(root)
    yield url, root
    postgres.stop(root)
    shutil.rmtree(root, ignore_errors=True)
