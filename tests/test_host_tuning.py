"""tuning/host/90-mxguard.conf: every setting is one the running kernel has, with a value of the
kernel's own form, and a reason written above it."""

from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "tuning/host/90-mxguard.conf"


def test_every_setting_exists_here_and_says_why():
    lines = FILE.read_text().splitlines()
    settings = 0
    for i, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line {i + 1}: not key = value"
        key, value = key.strip(), value.strip()
        proc = Path("/proc/sys") / key.replace(".", "/")
        if key == "kernel.io_uring_disabled" and not proc.exists():
            continue  # Linux before 6.6: io_uring has no switch, the setting does not apply.
        assert proc.exists(), f"line {i + 1}: the kernel has no {key}"
        # Same number of fields as the kernel's own value (a range is two numbers).
        assert len(value.split()) == len(proc.read_text().split()), (key, value)
        # Its reason: the line above is a comment (or the line above a run of settings sharing one).
        j = i - 1
        while j >= 0 and lines[j].strip() and not lines[j].startswith("#"):
            j -= 1
        assert j >= 0 and lines[j].startswith("#") and j >= i - 2, f"line {i + 1}: {key} has no reason above it"
        settings += 1
    assert settings >= 10
