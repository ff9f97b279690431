"""One appliance under qemu/KVM: a copy-on-write disk over the built image (grown, so that first
boot makes the data and spool partitions), OVMF with its own variables (systemd-boot counts tries
in files, but sets EFI variables too), an optional seed volume (FAT, label MXSEED), user-mode
networking with restrict=on — the guest reaches nothing but its forwards: the host's loopback
ports to its SMTP, console and metrics ports, and its downstream route 10.0.2.100:25 to a port on
the host's loopback (guestfwd, one pipe.py a connection). The serial console goes to a file.

KVM when it can run a PC guest; otherwise qemu's own emulation (TCG), slower by a factor the
timeouts allow for (SLOW). On this project's CI machine /dev/kvm is kvm-pvm (a Firecracker VM with
nested_pvm=1), which runs only PVM-enabled guest kernels and no firmware: OVMF and SeaBIOS stop
at their first instructions ("KVM internal error ... emulation failure"), so the boot tests run
under TCG there (appliance-image/README.md reports both)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# The address the guest's relay routes use for "the servers behind".
DOWNSTREAM = "10.0.2.100"
# The guest sees the host's forwarded connections coming from slirp's gateway address.
HOST_AS_SEEN = "10.0.2.2"


def probe_kvm():
    """(True, "") when KVM runs the appliance's firmware here (OVMF reaches its boot manager on
    the serial console), else (False, why)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not usable"
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "serial"
        p = subprocess.Popen(["qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "256", "-nodefaults",
                              "-display", "none", "-bios", "/usr/share/ovmf/OVMF.fd", "-serial", f"file:{log}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        end = time.monotonic() + 20
        while time.monotonic() < end and p.poll() is None and b"BdsDxe" not in (log.read_bytes() if log.exists() else b""):
            time.sleep(0.1)
        ran = log.exists() and b"BdsDxe" in log.read_bytes()
        if p.poll() is None:
            p.kill()
        out = p.communicate()[0].decode(errors="replace")
    if ran:
        return True, ""
    first = next((l for l in out.splitlines() if l.strip()), "no output from the firmware in 20 s")
    return False, f"KVM does not run the UEFI firmware here ({first.strip()})"


KVM, KVM_WHY = probe_kvm()
# Timeouts are stretched by this much under emulation.
SLOW = 1 if KVM else 5
ACCEL = ["-accel", "kvm", "-cpu", "host"] if KVM else ["-accel", "tcg,thread=multi", "-cpu", "max"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_volume(path, text, extra_files=()):
    """A FAT seed volume holding seed.ini (and `extra_files`: (name, bytes))."""
    subprocess.run(["mkfs.vfat", "-C", "-n", "MXSEED", str(path), "2048"], check=True, capture_output=True)
    files = [("seed.ini", text.encode())] + list(extra_files)
    for name, data in files:
        local = path.parent / f".seed-{name.replace('/', '_')}"
        local.write_bytes(data)
        subprocess.run(["mcopy", "-i", str(path), str(local), f"::/{name}"], check=True, capture_output=True,
                       env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        local.unlink()
    return path


class Guest:
    def __init__(self, image, workdir, seed=None, sink_port=None, disk_gb=8, memory_mb=2048, cpus=2):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = self.dir / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2" if str(image).endswith(".qcow2") else "raw",
                        "-b", str(Path(image).resolve()), str(self.disk), f"{disk_gb}G"], check=True)
        self.vars = self.dir / "OVMF_VARS.fd"
        shutil.copy(OVMF_VARS, self.vars)
        self.seed = seed
        self.sink_port = sink_port
        self.memory_mb, self.cpus = memory_mb, cpus
        self.smtp, self.console, self.metrics, self.ssh = free_port(), free_port(), free_port(), free_port()
        self.console_log = self.dir / "console.log"
        self.proc = None
        self.started = None

    def start(self):
        fwd = [f"hostfwd=tcp:127.0.0.1:{self.smtp}-:25", f"hostfwd=tcp:127.0.0.1:{self.console}-:8025",
               f"hostfwd=tcp:127.0.0.1:{self.metrics}-:9125", f"hostfwd=tcp:127.0.0.1:{self.ssh}-:22"]
        if self.sink_port:
            fwd.append(f"guestfwd=tcp:{DOWNSTREAM}:25-cmd:{sys.executable} {HERE.parent / 'pipe.py'} {self.sink_port}")
        cmd = ["qemu-system-x86_64", *ACCEL, "-machine", "q35", "-m", str(self.memory_mb),
               "-smp", str(self.cpus), "-nodefaults", "-display", "none",
               "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,file={self.vars}",
               "-drive", f"file={self.disk},if=virtio,format=qcow2,discard=unmap",
               "-netdev", "user,id=n0,restrict=on," + ",".join(fwd), "-device", "virtio-net-pci,netdev=n0",
               "-serial", f"file:{self.console_log}", "-device", "virtio-rng-pci"]
        if self.seed:
            cmd += ["-drive", f"file={self.seed},if=virtio,format=raw,readonly=on"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.dir / "qemu.log", "ab"), stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        return self

    def console_text(self):
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_console(self, pattern, timeout=120, start=0):
        """Waits for `pattern` (a regex) in the serial console after offset `start`; returns the match.
        `timeout` is for KVM (stretched by SLOW)."""
        timeout *= SLOW
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.console_text()[start:])
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"qemu exited ({self.proc.returncode}) waiting for {pattern!r}:\n{self.console_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"no {pattern!r} on the console in {timeout} s:\n{self.console_text()[-3000:]}")

    def wait_greeting(self, timeout=120):
        """Seconds from start until port 25 of the guest sends its 220 greeting (`timeout` as above)."""
        timeout *= SLOW
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"qemu exited ({self.proc.returncode}):\n{self.console_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.smtp), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(512).startswith(b"220"):
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"no SMTP greeting in {timeout} s:\n{self.console_text()[-3000:]}")

    def power_cut(self):
        """kill -9 of qemu: the guest's unflushed writes are lost, as at a power cut."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        self.power_cut()
