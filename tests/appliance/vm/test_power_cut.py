"""A power cut (kill -9 of qemu) while mxblast sends through the appliance: after the next boot,
every message that got 250 reaches the sink (the spool's fsync is the 250's promise, through the
guest's virtio disk to the image file)."""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from guest import Guest, seed_volume  # noqa: E402
from harness import MXBLAST, journal, record, seed_text, wait_for  # noqa: E402


def metric(g, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{g.metrics}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_a_power_cut_during_a_run_loses_no_acknowledged_mail(image, sink, ssh_key, guests, tmp_path):
    seed = seed_volume(tmp_path / "seed.img", seed_text(key=ssh_key))
    g = Guest(image, tmp_path / "vm", seed=seed, sink_port=sink.port)
    guests.append(g)
    g.start()
    g.wait_greeting(timeout=180)
    accepted = tmp_path / "cut.accepted"
    blast = subprocess.Popen([str(MXBLAST), "send", "--server", f"127.0.0.1:{g.smtp}", "--run", "cut",
                              "--accepted", str(accepted), "--json", str(tmp_path / "cut.json"),
                              "-c", "8", "-m", "20000", "-s", "4096", "--per-conn", "10"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Mail flows (the sink gets some) before the cut, so that some is in flight at it.
        wait_for(lambda: sink.stats().get("unique_by_run", {}).get("cut", 0) >= 100, timeout=120, what="mail through the guest")
        time.sleep(1.5)
        g.power_cut()
        cut_at = time.monotonic()
    finally:
        blast.terminate()
        blast.wait(60)
    ok = {int(x) for x in accepted.read_text().split()} if accepted.exists() else set()
    assert len(ok) >= 100, len(ok)
    g.start()
    try:
        g.wait_greeting(timeout=180)
    except TimeoutError:
        raise AssertionError("no greeting after the power cut:\n" + journal(g, ssh_key))
    wait_for(lambda: metric(g, "mxguard_queue_messages") == 0 and sink.stats()["unique_by_run"].get("cut", 0) >= len(ok),
             timeout=300, what=f"{len(ok)} acknowledged messages at the sink after the reboot")
    seqs = {}
    for m in sink.messages():
        s = re.search(rb"X-Mxblast-Seq: cut-(\d+)", m)
        if s:
            seqs[int(s.group(1))] = seqs.get(int(s.group(1)), 0) + 1
    lost = ok - set(seqs)
    dups = sum(c - 1 for c in seqs.values())
    record(what="power cut during mxblast", acknowledged=len(ok), delivered_unique=len(seqs), duplicates=dups,
           lost=len(lost), reboot_to_empty_queue_s=round(time.monotonic() - cut_at, 1))
    assert not lost, sorted(lost)[:20]
