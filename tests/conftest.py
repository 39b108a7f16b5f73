"""Shared pytest configuration for the test suite."""

# --- real-daemon testbed (tests/testbed/): sshd_hosts, docker_daemon, libvirt_qemu -----
# Importable as `testbed` whether or not `tests` is a package; fixtures never skip.
import sys as _sys
from pathlib import Path as _Path

if str(_Path(__file__).parent) not in _sys.path:
    _sys.path.insert(0, str(_Path(__file__).parent))

from testbed.fixtures import docker_daemon, libvirt_qemu, sshd_hosts  # noqa: E402,F401

# --- end testbed ------------------------------------------------------------------------


# --- runtime (scheduler) tests: anyio on asyncio ----------------------------------------
# isort: split
import pytest as _pytest  # noqa: E402


@_pytest.fixture
def anyio_backend():
    return "asyncio"
# --- end runtime ------------------------------------------------------------------------
