"""A throw-away PostgreSQL server on 127.0.0.1 for the tests (the quarantine and console tables
when several gateways share them).

    python3 tests/postgres.py start DIR   # prints the URL; the server runs until `stop DIR`
    python3 tests/postgres.py stop DIR

From pytest: `with Postgres(dir) as url: ...`. PostgreSQL refuses to run as root, so as root the
cluster belongs to the `postgres` system user (Debian's package creates it) and runs as that user.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import glob


def _bin(name):
    # Debian keeps the server programs under /usr/lib/postgresql/VERSION/bin; the newest wins.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for d in versions + ["/usr/local/bin", "/usr/bin"]:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")


def _as_owner(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root):
    root = os.path.abspath(root)
    data = os.path.join(root, "data")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_owner([_bin("initdb"), "-D", data, "-U", "mxguard", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=on -c max_connections=50"
    with open(os.path.join(root, "opts"), "w") as f:
        f.write(opts)
    resume(root)
    url = f"postgresql://mxguard@127.0.0.1:{port}/postgres"
    with open(os.path.join(root, "url"), "w") as f:
        f.write(url)
    return url


def resume(root):
    """Starts the server of `root` (again, on the same port)."""
    root = os.path.abspath(root)
    with open(os.path.join(root, "opts")) as f:
        opts = f.read()
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", os.path.join(root, "data"), "-l", os.path.join(root, "log"), "-o", opts,
                              "-w", "-t", "60", "start"]), check=True, stdout=subprocess.DEVNULL)


def pause(root):
    """Stops the server of `root` (fast shutdown: clients are cut off), keeping its data."""
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", os.path.join(os.path.abspath(root), "data"), "-m", "fast", "-w", "stop"]),
                   check=True, stdout=subprocess.DEVNULL)


def stop(root):
    data = os.path.join(os.path.abspath(root), "data")
    if os.path.isdir(data):
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def psql(url, sql):
    """Runs `sql` with psql; its unaligned, tuples-only output."""
    return subprocess.run(["psql", url, "-XAtc", sql], check=True, capture_output=True, text=True).stdout


class Postgres:
    def __init__(self, root):
        self.root = root

    def __enter__(self):
        return start(self.root)

    def __exit__(self, *exc):
        stop(self.root)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    if sys.argv[1] == "start":
        print(start(sys.argv[2]))
    else:
        stop(sys.argv[2])
