"""Operations: live knobs through the admin socket, the metrics endpoint, the event log and its
rotation, and the embedded defaults of `mxguard run`."""

import json
import os
import signal
import smtplib
import socket
import subprocess
import time

from conftest import MXGUARD, MXBLAST, ROOT, Sink, free_port, wait_for, wait_port


def test_sysctl_lists_reads_and_changes_live_knobs(gateway, sink):
    r = gateway.sysctl("-a")
    lines = r.stdout.splitlines()
    assert "smtp.max_connections = 2000" in lines
    assert f"smtp.listen = 127.0.0.1:{gateway.port}" in lines
    assert len(lines) > 40
    assert gateway.sysctl("smtp.max_errors").stdout.strip() == "smtp.max_errors = 20"
    r = gateway.sysctl("smtp.max_connections_per_ip=1")
    assert r.stdout.strip() == "smtp.max_connections_per_ip = 1"
    # The change is live: a second connection from this address is refused.
    a = socket.create_connection(("127.0.0.1", gateway.port))
    assert a.recv(100).startswith(b"220")
    b = socket.create_connection(("127.0.0.1", gateway.port))
    assert b.recv(100).startswith(b"421")
    a.close()
    b.close()
    ev = gateway.events("sysctl")
    assert ev and ev[-1]["knob"] == "smtp.max_connections_per_ip"


def test_sysctl_refuses_bad_values_and_restart_knobs(gateway):
    r = gateway.sysctl("smtp.max_errors=0", check=False)
    assert r.returncode != 0 and "outside" in r.stderr
    r = gateway.sysctl("smtp.listen=127.0.0.1:1", check=False)
    assert r.returncode != 0 and "restart" in r.stderr
    r = gateway.sysctl("no.such_knob=1", check=False)
    assert r.returncode != 0 and "unknown knob" in r.stderr
    assert gateway.sysctl("smtp.max_errors").stdout.strip() == "smtp.max_errors = 20"


def test_bad_config_file_is_refused_with_its_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("smtp.max_errors = 5\nsmtp.max_recipients = lots\n")
    r = subprocess.run([str(MXGUARD), "run", "--config", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert f"{conf}:2: smtp.max_recipients" in r.stderr


def test_bad_route_stops_start_up(tmp_path):
    r = subprocess.run([str(MXGUARD), "run", "--set", f"state.dir={tmp_path}", "--set",
                        "relay.domains=example.test:host:notaport"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "relay.domains entry 1" in r.stderr


def test_metrics_endpoint(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: m\r\n\r\nx\r\n")
    wait_for(lambda: gateway.metrics()['mxguard_deliveries_total{result="sent"}'] == 1, what="delivery")
    m = gateway.metrics()
    assert m["mxguard_connections_total"] >= 1
    assert m['mxguard_messages_total{result="accepted"}'] == 1
    assert m["mxguard_received_bytes_total"] > 0
    assert m["mxguard_eod_to_reply_seconds_count"] == 1
    assert 0 < m['mxguard_eod_to_reply_seconds{quantile="0.99"}'] < 5
    assert m["mxguard_accept_to_delivered_seconds_count"] == 1


def test_log_lines_carry_the_envelope_and_rotate(make_gateway, sink):
    g = make_gateway(sink.port, {"log.rotate_bytes": "2000", "log.keep": "3"}, name="rot")
    for i in range(15):
        with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
            c.sendmail(f"s{i}@sender.example", ["u@example.test"], b"Subject: l\r\n\r\nx\r\n")
    wait_for(lambda: sink.stats()["messages"] == 15, what="deliveries")
    time.sleep(0.5)
    logs = sorted(p.name for p in g.state.glob("mxguard.log*"))
    assert "mxguard.log.1" in logs and "mxguard.log.3" in logs and "mxguard.log.4" not in logs, logs
    lines = []
    for p in g.state.glob("mxguard.log*"):
        lines += [json.loads(x) for x in p.read_text().splitlines()]
    acc = [e for e in lines if e["event"] == "accepted"]
    assert acc, "accepted events survive rotation"
    e = acc[-1]
    for key in ("ts", "qid", "client", "helo", "from", "rcpt", "size"):
        assert key in e, key


def test_embedded_defaults(tmp_path):
    """`mxguard run` with no arguments: SMTP on 127.0.0.1:2525, example.test relayed to
    127.0.0.1:2526, state in ./mxguard-data, metrics on 127.0.0.1:9125; `mxblast sink` with no
    arguments listens on 127.0.0.1:2526. Skipped when those ports are taken on this machine."""
    for port in (2525, 2526, 9125):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                import pytest
                pytest.skip(f"port {port} is in use here")
    sink = subprocess.Popen([str(MXBLAST), "sink", "--stats", str(tmp_path / "s.json")], cwd=tmp_path)
    gw = subprocess.Popen([str(MXGUARD)], cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        wait_port(2526, proc=sink)
        wait_port(2525, proc=gw)
        r = subprocess.run(["swaks", "--server", "127.0.0.1:2525", "--to", "someone@example.test"],
                           capture_output=True, text=True, timeout=30)
        assert "queued as" in r.stdout, r.stdout
        wait_for(lambda: (tmp_path / "s.json").exists() and json.loads((tmp_path / "s.json").read_text())["messages"] == 1,
                 what="the sink to receive it")
        assert (tmp_path / "mxguard-data" / "mxguard.log").exists()
        import urllib.request
        assert b"mxguard_messages_total" in urllib.request.urlopen("http://127.0.0.1:9125/metrics", timeout=5).read()
    finally:
        for p in (gw, sink):
            p.send_signal(signal.SIGTERM)
            p.wait(20)
    assert gw.returncode == 0, "clean exit on SIGTERM"


def test_shutdown_sends_421_to_idle_sessions(gateway):
    s = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    gateway.proc.send_signal(signal.SIGTERM)
    line = f.readline()
    assert line.startswith(b"421 4.3.2"), line
    gateway.proc.wait(15)
    assert gateway.proc.returncode == 0


def test_knobs_md_is_generated_from_the_registry():
    r = subprocess.run([str(MXGUARD), "sysctl", "--markdown"], capture_output=True, text=True, timeout=10)
    assert r.stdout.strip() == (ROOT / "tuning" / "KNOBS.md").read_text().strip()


def test_log_is_written_in_batches_and_flushed_at_shutdown(make_gateway, sink):
    g = make_gateway(sink.port, {"log.flush_ms": "3000"}, name="logbatch")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: b\r\n\r\nx\r\n")
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery")
    time.sleep(0.5)
    assert not g.events("accepted"), "lines wait for the flush interval"
    wait_for(lambda: g.events("accepted"), timeout=6, what="the periodic flush")
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: b2\r\n\r\nx\r\n")
    wait_for(lambda: sink.stats()["messages"] == 2, what="delivery")
    g.stop()
    assert len(g.events("accepted")) == 2 and g.events("stop"), "everything is written at shutdown"


def test_a_second_gateway_is_refused_on_the_same_state_dir_or_port(make_gateway, sink, tmp_path):
    g = make_gateway(sink.port)
    assert (g.state / "mxguard.pid").read_text().strip() == str(g.proc.pid)

    def run_with(path, **knobs):
        conf = tmp_path / path
        conf.write_text("".join(f"{k} = {v}\n" for k, v in {**g.knobs, **knobs}.items()))
        return subprocess.run([str(MXGUARD), "run", "--config", str(conf)], capture_output=True, text=True, timeout=20)

    other_ports = {"metrics.listen": f"127.0.0.1:{free_port()}", "console.listen": f"127.0.0.1:{free_port()}"}
    # The same state directory (its spool), on ports of its own: refused, naming the first.
    r = run_with("same-state.conf", **{"smtp.listen": f"127.0.0.1:{free_port()}"}, **other_ports)
    assert r.returncode != 0 and "another mxguard runs on the state directory" in r.stderr, r.stderr
    assert f"(pid {g.proc.pid})" in r.stderr, r.stderr
    # The same SMTP port (SO_REUSEPORT would share it silently), a state directory of its own.
    r = run_with("same-port.conf", **{"state.dir": str(tmp_path / "second")}, **other_ports)
    assert r.returncode != 0, r.stderr
    assert f"cannot listen on 127.0.0.1:{g.port}: another process listens there" in r.stderr, r.stderr
    # Nor does the test sink share a port that is listened on.
    r = subprocess.run([str(MXBLAST), "sink", "--listen", f"127.0.0.1:{g.port}"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0 and "another process listens there" in r.stderr, r.stderr
    # The first kept everything: its pid file, and mail goes through it.
    assert (g.state / "mxguard.pid").read_text().strip() == str(g.proc.pid)
    with smtplib.SMTP("127.0.0.1", g.port, timeout=10) as c:
        c.sendmail("a@sender.example", ["u@example.test"], b"Subject: still here\r\n\r\nx\r\n")
    wait_for(lambda: sink.stats()["messages"] == 1, what="delivery by the first gateway")
    # The lock goes with the process, however it ends: after kill -9 the next start takes it.
    g.kill9()
    g.start()
    assert (g.state / "mxguard.pid").read_text().strip() == str(g.proc.pid)


def test_help_prints_the_usage_and_exits_0(tmp_path):
    """`-h`, `--help` and `help` print every command's usage; `CMD --help` and `help CMD` that
    command's; neither starts anything (run in an empty directory: no state is made)."""
    def mx(*args):
        return subprocess.run([str(MXGUARD), *args], capture_output=True, text=True, timeout=10, cwd=tmp_path)
    commands = ["run", "sysctl", "reload", "explain", "image-hash", "bulk-signature", "user", "setup-code", "digest",
                "learn", "version", "help"]
    for args in (["-h"], ["--help"], ["help"], ["--config", "x.conf", "--help"]):
        r = mx(*args)
        assert r.returncode == 0 and r.stdout.startswith("usage:\n"), (args, r)
        for c in commands[1:]:
            assert f"mxguard {c}" in r.stdout, (args, c)
    for c in commands:
        for args in ([c, "--help"], [c, "-h"], ["help", c]):
            r = mx(*args)
            assert r.returncode == 0, (args, r.stderr)
            first = r.stdout.splitlines()[1].strip()
            assert first.startswith("mxguard [run]" if c == "run" else f"mxguard {c}"), (args, r.stdout)
            # Only that command's usage lines.
            own = "mxguard [run]" if c == "run" else f"mxguard {c}"
            assert all(l.strip().startswith(own) for l in r.stdout.splitlines() if l.startswith("  mxguard")), r.stdout
    # --help as the value of --set is a value, not a request for help.
    r = mx("sysctl", "--set", "smtp.hostname=--help", "--markdown")
    assert r.returncode == 0 and r.stdout.startswith("#"), r
    r = mx("frobnicate")
    assert r.returncode != 0 and "usage:" in r.stderr
    r = mx("help", "frobnicate")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = mx("--version")
    assert r.returncode == 0 and r.stdout.startswith("mxguard ")
    assert list(tmp_path.iterdir()) == []
