"""Real-daemon testbed: sshd hosts in network namespaces, dockerd, libvirt + a tiny guest.

Plain helpers (no pytest); the fixtures that wrap them live in ``tests/testbed/fixtures.py``
and are exposed through ``tests/conftest.py``. Every helper raises ``TestbedError`` with
a message saying what to install or start when the real thing is unavailable; fixtures
turn that into a test failure, never a skip. ``.ci/setup-system.sh`` installs all of it.
"""

from ._proc import TestbedError
from .docker import BUSYBOX_IMAGE, DOCKER_URL, ensure_busybox_image, ensure_dockerd
from .sshd import SshCluster, SshHost
from .vm import (
    DOMAIN_XML_TEMPLATE,
    QEMU_URI,
    GuestKit,
    GuestResult,
    build_guest,
    ensure_libvirtd,
    parse_console,
)

__all__ = [
    "BUSYBOX_IMAGE",
    "DOCKER_URL",
    "DOMAIN_XML_TEMPLATE",
    "QEMU_URI",
    "GuestKit",
    "GuestResult",
    "SshCluster",
    "SshHost",
    "TestbedError",
    "build_guest",
    "ensure_busybox_image",
    "ensure_dockerd",
    "ensure_libvirtd",
    "parse_console",
]
