"""A reachable dockerd and the local base image ``agentic-sched/busybox:test``.

No registry is reachable here, so the image is imported from the host's static
busybox (``busybox-static``): ``/bin/busybox`` plus one symlink per applet, ``PATH=/bin``,
``CMD ["/bin/sh"]``. Containers should run with ``network_mode="none"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ._proc import TestbedError, log, ok, run, wait_until

DOCKER_SOCKET = "/var/run/docker.sock"
DOCKER_URL = f"unix://{DOCKER_SOCKET}"
BUSYBOX_IMAGE = "agentic-sched/busybox:test"
DOCKERD_LOG = "/tmp/dockerd.log"


def ensure_dockerd(timeout: float = 60) -> str:
    """Make ``docker info`` work, starting dockerd (no iptables, no bridge) if needed.

    Returns the socket URL ``unix:///var/run/docker.sock``. A dockerd started here keeps
    running after the tests (like the one .ci/setup-system.sh starts). Raises
    ``TestbedError`` if docker is not installed or does not come up in ``timeout`` s.
    """
    if ok(["docker", "info"]):
        return DOCKER_URL
    if shutil.which("dockerd") is None:
        raise TestbedError("dockerd not installed; run .ci/setup-system.sh as root "
                           "(apt-get install docker.io)")
    log.info("starting dockerd --iptables=false --bridge=none (log %s)", DOCKERD_LOG)
    with open(DOCKERD_LOG, "ab") as out:
        subprocess.Popen(["dockerd", "--iptables=false", "--bridge=none"],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    if not wait_until(lambda: ok(["docker", "info"]), timeout, interval=0.5):
        tail = Path(DOCKERD_LOG).read_text(errors="replace")[-2000:]
        raise TestbedError(f"dockerd did not come up within {timeout} s; {DOCKERD_LOG}:\n{tail}")
    return DOCKER_URL


def ensure_busybox_image(image: str = BUSYBOX_IMAGE) -> str:
    """Import ``image`` from /bin/busybox unless it exists; return its name.

    Raises ``TestbedError`` if busybox-static is missing or the import fails.
    """
    if ok(["docker", "image", "inspect", image]):
        return image
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise TestbedError("/bin/busybox missing: apt-get install busybox-static")
    log.info("importing %s from %s", image, busybox)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            (root / d).mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = run([str(busybox), "--list"]).stdout.split()
        for applet in applets:
            link = root / "bin" / applet
            if not link.exists():
                os.symlink("busybox", link)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin",
                              "-", image], stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0:
            raise TestbedError(f"docker import {image} failed: {imp.stderr.strip()}")
    return image
