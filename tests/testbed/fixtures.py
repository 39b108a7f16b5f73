"""pytest fixtures over the testbed helpers; imported into ``tests/conftest.py``.

Fixtures never skip: if a daemon cannot be provided the test fails with the reason
(CI runs ``.ci/setup-system.sh`` first).

- ``sshd_hosts``  (session): callable ``sshd_hosts(n=2) -> list[SshHost]``.
- ``docker_daemon`` (session): the docker socket URL ``unix:///var/run/docker.sock``;
  the image ``BUSYBOX_IMAGE`` exists.
- ``libvirt_qemu`` (session): a ``GuestKit`` (kernel, initrd, domain XML template,
  ``run(conn, cmd)``) with libvirtd answering on ``qemu:///system``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ._proc import TestbedError
from .docker import ensure_busybox_image, ensure_dockerd
from .sshd import SshCluster, SshHost
from .vm import GuestKit, build_guest, ensure_libvirtd


@pytest.fixture(scope="session")
def sshd_hosts() -> Iterator[Callable[[int], list[SshHost]]]:
    """Factory ``sshd_hosts(n=2) -> list[SshHost]`` of real sshd hosts.

    Hosts are shared by the whole session: each call returns the first ``n`` hosts
    (created on demand, at most 13) after bringing them back up (link restored, sshd
    restarted if killed), so a test may ``cut()``/``kill()`` freely. Namespaces,
    bridge and processes are removed at session end.
    """
    try:
        cluster = SshCluster()
    except TestbedError as exc:
        pytest.fail(f"sshd testbed unavailable: {exc}", pytrace=False)

    def factory(n: int = 2) -> list[SshHost]:
        try:
            return cluster.hosts(n)
        except TestbedError as exc:
            pytest.fail(f"sshd testbed: {exc}", pytrace=False)

    factory.cluster = cluster  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def docker_daemon() -> str:
    """URL of a reachable docker socket; ``agentic-sched/busybox:test`` is present."""
    try:
        url = ensure_dockerd()
        ensure_busybox_image()
    except TestbedError as exc:
        pytest.fail(f"docker testbed unavailable: {exc}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def libvirt_qemu() -> GuestKit:
    """A cached tiny guest (``GuestKit``) with libvirtd up on ``qemu:///system``."""
    try:
        ensure_libvirtd()
        return build_guest()
    except TestbedError as exc:
        pytest.fail(f"libvirt/qemu testbed unavailable: {exc}", pytrace=False)
