"""Fixtures of the appliance's boot tests (the suite's own, tests/conftest.py, hold too: `sink`
is the guests' downstream server on the host's loopback): the images tests/appliance/run built
for this run, an SSH key for the seed's admin
user, and guests that are always killed at the end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: the boot test tests/appliance/run keeps where guests run only under emulation")


@pytest.fixture(scope="session")
def images():
    d = os.environ.get("MXGUARD_APPLIANCE_DIR")
    if not d:
        pytest.skip("the images are built by tests/appliance/run (MXGUARD_APPLIANCE_DIR unset)")
    d = Path(d)
    found = {}
    for name in ["first", "next"]:
        q = sorted((d / name).glob("mxguard-*.qcow2"))
        if q:
            found[name] = q[0]
    return found


@pytest.fixture(scope="session")
def image(images):
    return images["first"]


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id"), "-C", "test@host"], check=True)
    return d / "id"


@pytest.fixture
def guests():
    made = []
    yield made
    for g in made:
        g.stop()
