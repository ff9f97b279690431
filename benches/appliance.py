#!/usr/bin/env python3
"""The appliance against the same gateway on the host: one mxblast run (generated 2 KB messages,
20 connections, PIPELINING) sent to mxguard on this machine's loopback, and the same run sent to
the appliance booted under qemu (2 vCPUs, virtio disk and net, user networking with restrict=on)
through its forwarded port 25; both relay to an mxblast sink on the host's loopback (the guest's
route through guestfwd). Measured end to end (until the sink has every accepted message), in A/B
pairs in one run: host, guest, host, guest.

The guest runs under KVM where KVM can run it, else under qemu's emulation (TCG); the accelerator
is in the record. The two gateways get the same knobs (the seed's [knobs] in the guest). Where
the difference goes: the CPU time each side spends per message (the host's mxguard process; the
whole qemu process for the guest: its vCPUs, the emulated devices and user networking) is
recorded beside the rates.

Usage: benches/appliance.py IMAGE.qcow2 [--messages N] [--no-record]
       (IMAGE: appliance-image/build's qcow2; build it first, as root)
Appended to benches/RESULTS.md with the command line unless --no-record.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests/appliance/vm"))
sys.path.insert(0, str(ROOT / "benches"))
import guest as vm  # noqa: E402
from scan import tree_cpu  # noqa: E402  (CPU seconds of a process and its children, from /proc)
from smtp_throughput import BENCH, blast_end_to_end  # noqa: E402  (the same end-to-end measure)

REL = ROOT / "target/release"
# The same on both sides: the seed gives them to the guest, --config to the host's gateway.
KNOBS = {"smtp.cores": "2", "relay.conn_idle_s": "5", "dns.timeout_ms": "500", "dns.attempts": "1",
         "av.enabled": "0", "smtp.hostname": "mx1.example.test"}


def main():
    args = sys.argv[1:]
    record = "--no-record" not in args
    args = [a for a in args if a != "--no-record"]
    n = 2000
    if "--messages" in args:
        i = args.index("--messages")
        n = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    image = Path(args[0]).resolve()
    work = Path(tempfile.mkdtemp(prefix="mxguard-bench-appliance-"))
    BENCH.mkdir(parents=True, exist_ok=True)
    procs = []
    g = None
    try:
        sink_port = vm.free_port()
        stats = work / "sink.json"
        procs.append(subprocess.Popen([str(REL / "mxblast"), "sink", "--listen", f"127.0.0.1:{sink_port}", "--cores", "1",
                                       "--stats", str(stats)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # The host's gateway: the package's settings where they matter (relay, trust, knobs).
        host_port = vm.free_port()
        conf = work / "host.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in {
            **KNOBS, "state.dir": str(work / "host-state"), "smtp.listen": f"127.0.0.1:{host_port}",
            "metrics.listen": f"127.0.0.1:{vm.free_port()}", "console.listen": "", "log.stderr": "0",
            "relay.domains": f"example.test:127.0.0.1:{sink_port}", "policy.trusted_networks": "127.0.0.0/8"}.items()))
        host_gw = subprocess.Popen([str(REL / "mxguard"), "run", "--config", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        procs.append(host_gw)
        seed = "\n".join(["serial = 1", "[relay]", f"domain = example.test:{vm.DOWNSTREAM}:25", "[knobs]",
                          f"policy.trusted_networks = {vm.HOST_AS_SEEN}/32", *[f"{k} = {v}" for k, v in KNOBS.items()]]) + "\n"
        g = vm.Guest(image, work / "vm", seed=vm.seed_volume(work / "seed.img", seed), sink_port=sink_port)
        g.start()
        boot_s = g.wait_greeting(timeout=180)
        time.sleep(5 * vm.SLOW)  # the guest's first-boot work (journal flush, chrony) settles
        rows = []
        for pair in range(2):
            for side, port, pid in [("host", host_port, host_gw.pid), ("guest", g.smtp, g.proc.pid)]:
                cpu0 = tree_cpu(pid)
                r = blast_end_to_end(port, stats, 2048, 20, n, f"{side}{pair}")
                r["cpu_ms_per_msg"] = (tree_cpu(pid) - cpu0) * 1000 / max(r["arrived"], 1)
                rows.append({"pair": pair, "side": side, **r})
                print(json.dumps(rows[-1]), flush=True)
        host = [r["msgs_per_s"] for r in rows if r["side"] == "host"]
        guest = [r["msgs_per_s"] for r in rows if r["side"] == "guest"]
        ratios = [gr / hr for gr, hr in zip(guest, host)]
        accel = "kvm" if vm.KVM else f"tcg ({vm.KVM_WHY})"
        print(f"guest/host: {', '.join(f'{x:.3f}' for x in ratios)}; accel {accel}; boot {boot_s:.1f} s")
        cpu = {side: sum(r["cpu_ms_per_msg"] for r in rows if r["side"] == side) / 2 for side in ("host", "guest")}
        if record:
            lines = [f"\n### {datetime.now(timezone.utc):%Y-%m-%d} — the appliance against the host (benches/appliance.py)\n",
                     f"`benches/appliance.py {image.name} --messages {n}`; guest: 2 vCPUs, 2 GiB, virtio disk and net, "
                     f"user networking (restrict=on), accelerator: {accel}; first boot to the greeting {boot_s:.0f} s. "
                     "End-to-end msg/s (until the host's sink has every accepted message), 2 KB, 20 connections; "
                     "CPU ms per message: the host's mxguard process, and the whole qemu process for the guest.\n",
                     "| pair | host msg/s | guest msg/s | guest/host | guest p50 ms | guest p99 ms | host CPU ms/msg | guest (qemu) CPU ms/msg |",
                     "|---|---|---|---|---|---|---|---|"]
            for p in range(2):
                h = next(r for r in rows if r["pair"] == p and r["side"] == "host")
                q = next(r for r in rows if r["pair"] == p and r["side"] == "guest")
                lines.append(f"| {p + 1} | {h['msgs_per_s']:.0f} | {q['msgs_per_s']:.0f} | {q['msgs_per_s'] / h['msgs_per_s']:.3f} | "
                             f"{q['p50_ms']:.1f} | {q['p99_ms']:.1f} | {h['cpu_ms_per_msg']:.2f} | {q['cpu_ms_per_msg']:.2f} |")
            lines.append(f"\nCPU per message, guest over host: {cpu['guest'] / max(cpu['host'], 1e-9):.1f}×.")
            with open(ROOT / "benches/RESULTS.md", "a") as f:
                f.write("\n".join(lines) + "\n")
    finally:
        if g:
            g.stop()
        for p in procs:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
