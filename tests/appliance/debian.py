"""A plain Debian 12 root to install mxguard's package into: debootstrap's minbase with the
package's dependencies, built once and kept in /var/cache/mxguard-appliance (keyed by what it
holds), then copied for each test, so every test starts from a root nobody has touched.

Building the base reads Debian's archive through the machine's own apt mirror (set-up, as
`.ci/run`'s apt-get is); a test itself uses loopback only."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

CACHE = Path("/var/cache/mxguard-appliance")
# Part of the cache key: change it whenever base() builds a different root.
RECIPE = "minbase+updates+security 2"


def mirror():
    """The machine's Debian mirror, from its apt sources (deb822 or one-line form)."""
    for f in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", f.read_text(), re.M):
            if "security" not in uri:
                return uri
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt").glob("sources.list.d/*.list"))]:
        if f.exists():
            for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", f.read_text(), re.M):
                return m.group(1)
    return "http://deb.debian.org/debian"


def depends_of(deb):
    """The package names a .deb depends on (versions and alternatives' rest dropped)."""
    line = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True).stdout
    return sorted({re.split(r"[ (|]", d.strip())[0] for d in line.split(",") if d.strip()})


def base(packages):
    """A minbase bookworm root holding `packages`, built once."""
    key = hashlib.sha256(" ".join([RECIPE, *sorted(packages)]).encode()).hexdigest()[:12]
    done = CACHE / f"bookworm-minbase-{key}"
    if (done / "etc/debian_version").exists():
        return done
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f".building-{key}"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(work), mirror()], check=True, capture_output=True, timeout=1800)
    # A Debian 12 host as installed: its point-release updates and security suites too (the
    # package's libraries may be newer there than in the release itself, as libclamav12 is), from
    # the machine's own apt sources and settings.
    for f in Path("/etc/apt").glob("sources.list.d/*.sources"):
        shutil.copy(f, work / "etc/apt/sources.list.d" / f.name)
    if Path("/etc/apt/sources.list").exists():
        shutil.copy("/etc/apt/sources.list", work / "etc/apt/sources.list")
    for f in Path("/etc/apt/apt.conf.d").glob("99*"):
        shutil.copy(f, work / "etc/apt/apt.conf.d" / f.name)
    shutil.copy("/etc/resolv.conf", work / "etc/resolv.conf")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["chroot", str(work), "apt-get", "update", "-qq"], check=True, capture_output=True, env=env, timeout=900)
    subprocess.run(["chroot", str(work), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   check=True, capture_output=True, env=env, timeout=1800)
    # No package caches or lists in the copies.
    subprocess.run(["chroot", str(work), "apt-get", "clean"], check=True)
    shutil.rmtree(work / "var/lib/apt/lists", ignore_errors=True)
    (work / "var/lib/apt/lists/partial").mkdir(parents=True)
    work.rename(done)
    return done


class Root:
    """A copy of a base root, with /proc and /sys (read-only) mounted while it is in use; its /dev
    is debootstrap's own nodes."""

    def __init__(self, base_dir, where):
        self.path = Path(where)
        subprocess.run(["cp", "-a", str(base_dir), str(self.path)], check=True)
        self.mounts = []
        for src, dst, opts in [("proc", "proc", ["-t", "proc"]), ("/sys", "sys", ["--bind", "-o", "ro"])]:
            target = self.path / dst
            target.mkdir(exist_ok=True)
            subprocess.run(["mount", *opts, src, str(target)], check=True)
            self.mounts.append(target)

    def run(self, *cmd, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["chroot", str(self.path), *cmd], **kw)

    def close(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        self.mounts = []
        # Never across a mount point: were an unmount to fail, the host's /sys stays untouched.
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.path)], check=False)
