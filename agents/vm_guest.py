"""Build the guest the ``vm`` runtime boots: a Debian kernel + a busybox initrd.

The initrd holds busybox-static and ``runtime_vm.INIT_SCRIPT`` as ``/init`` (reads the
command from the kernel command line, prints the console protocol, powers off); the
kernel comes from the distribution's ``linux-image-amd64`` package (``apt-get download``,
nothing is installed). Run it on each VM host, once, as a user that may run apt::

    python3 -m agentic_sched.agents.vm_guest            # or: agentic-sched vm-guest
    python3 <remote_dir>/agent-<version>/vm_guest.py     # on a provisioned SSH host

It prints the two paths; point the agent at them with ``$AGENTIC_VM_KERNEL`` /
``$AGENTIC_VM_INITRD`` or per task with ``options.kernel`` / ``options.initrd``. The
files are cached under ``$AGENTIC_SCHED_VM_CACHE`` (default ``/var/tmp/agentic-sched/vm``,
outside /root so the hypervisor user can read them), keyed by kernel version and init
script; concurrent builders wait on a file lock. Needs apt-get/apt-cache, dpkg-deb, cpio,
gzip and /bin/busybox (Debian/Ubuntu ``busybox-static``). Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__:
    from .runtime_vm import INIT_SCRIPT
else:  # run from a copied agents/ directory
    from runtime_vm import INIT_SCRIPT  # type: ignore[no-redef]

CACHE_ROOT = Path(os.environ.get("AGENTIC_SCHED_VM_CACHE", "/var/tmp/agentic-sched/vm"))
BUSYBOX = Path("/bin/busybox")


class GuestBuildError(RuntimeError):
    """The guest could not be built; the message names the missing tool or failed step."""


def _run(argv: list[str], *, cwd: Path | None = None, timeout: float = 300) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise GuestBuildError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise GuestBuildError(f"{' '.join(argv)} did not finish within {timeout:g}s") from None
    if proc.returncode != 0:
        raise GuestBuildError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def kernel_package() -> tuple[str, str]:
    """(package, version) of the kernel ``linux-image-amd64`` points to (``apt-get update``
    first if the package lists are empty)."""
    def lookup() -> str | None:
        try:
            out = _run(["apt-cache", "depends", "linux-image-amd64"])
        except GuestBuildError:
            return None
        m = re.search(r"Depends:\s*(linux-image-[\w.-]+-amd64)\b", out)
        return m[1] if m else None

    pkg = lookup()
    if pkg is None:
        _run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], timeout=900)
        pkg = lookup()
    if pkg is None:
        raise GuestBuildError("apt-cache knows no linux-image-*-amd64 package (not Debian/Ubuntu amd64?)")
    m = re.search(r"^Version:\s*(\S+)", _run(["apt-cache", "show", "--no-all-versions", pkg]), re.M)
    if m is None:
        raise GuestBuildError(f"apt-cache show {pkg} has no Version")
    return pkg, m[1]


def build_initrd(dest: Path, busybox: Path = BUSYBOX) -> None:
    """Write a gzip'd newc cpio with busybox, ``/init`` and ``/dev/console`` to ``dest``
    (root: ``mknod`` of the console needs it)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("bin", "dev", "proc", "sys", "tmp"):
            (root / d).mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        (root / "init").write_text(INIT_SCRIPT)
        (root / "init").chmod(0o755)
        os.mknod(root / "dev" / "console", 0o600 | 0o020000, os.makedev(5, 1))
        files = subprocess.run(["find", ".", "-print0"], cwd=root, capture_output=True, check=True).stdout
        with open(dest, "wb") as out:
            cpio = subprocess.Popen(["cpio", "--null", "-o", "-H", "newc", "--quiet"], cwd=root,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=out)
            assert cpio.stdout is not None
            cpio.stdout.close()
            cpio.communicate(files)
            if cpio.wait() != 0 or gz.wait() != 0:
                raise GuestBuildError("building the initrd with cpio | gzip failed")


def build_guest(cache_root: Path = CACHE_ROOT) -> tuple[Path, Path, str]:
    """``(kernel, initrd, kernel_version)``, built on first use (~5 s and one download),
    then from the cache. ``GuestBuildError`` names what is missing."""
    pkg, version = kernel_package()
    key = f"{pkg}_{version}_{hashlib.sha256(INIT_SCRIPT.encode()).hexdigest()[:12]}"
    target = cache_root / key
    kernel, initrd = target / "vmlinuz", target / "initrd.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd, version
    if not BUSYBOX.exists():
        raise GuestBuildError(f"{BUSYBOX} missing: install busybox-static")
    cache_root.mkdir(parents=True, exist_ok=True)
    for p in (cache_root, *cache_root.parents):  # the hypervisor user must traverse the path
        if str(p) in ("/", "/var", "/tmp", "/var/tmp"):
            break
        p.chmod(0o755)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if kernel.exists() and initrd.exists():
            return kernel, initrd, version
        with tempfile.TemporaryDirectory(dir=cache_root) as tmp:
            work = Path(tmp)
            _run(["apt-get", "download", f"{pkg}={version}"], cwd=work, timeout=600)
            deb = next(work.glob("*.deb"))
            _run(["sh", "-c", f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{work}' --wildcards './boot/vmlinuz-*'"])
            build = work / "out"
            build.mkdir()
            shutil.copy2(next((work / "boot").glob("vmlinuz-*")), build / "vmlinuz")
            build_initrd(build / "initrd.gz")
            for f in build.iterdir():
                f.chmod(0o644)
            build.chmod(0o755)
            build.rename(target)
    return kernel, initrd, version


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vm_guest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE_ROOT, help=f"cache directory (default {CACHE_ROOT})")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        kernel, initrd, version = build_guest(args.cache)
    except (GuestBuildError, OSError) as exc:
        print(f"vm guest: {exc}", file=sys.stderr)
        return 2
    print(f"AGENTIC_VM_KERNEL={kernel}\nAGENTIC_VM_INITRD={initrd}")
    print(f"# kernel {version}; ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
