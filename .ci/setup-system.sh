#!/usr/bin/env bash
# Install and start the real daemons the test suite talks to (Debian 12, run as root).
#
# Contract: idempotent (safe to run any number of times), prints every step, exits
# non-zero if a package cannot be installed or a daemon does not come up.
# Afterwards: `docker info` works, the image agentic-sched/busybox:test exists,
# `virsh -c qemu:///system list` works, sshd/ip/busybox/chromium are installed.
# Does not start sshd: the tests run their own sshd instances (tests/testbed/).
set -euo pipefail

log() { printf '[setup-system] %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "setup-system.sh must run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
          -o DPkg::Lock::Timeout=600)
PACKAGES=(
    docker.io busybox-static openssh-server openssh-client iproute2
    libvirt-dev pkg-config
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils cpio chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

# apt may be locked by another process: DPkg::Lock::Timeout waits for dpkg's lock,
# the loop below also retries a failed update/install a few times.
retry() {
    local n
    for n in 1 2 3 4 5; do
        if "$@"; then return 0; fi
        log "attempt $n of '$*' failed; retrying in 10 s"
        sleep 10
    done
    return 1
}

if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get update"
    retry apt-get "${APT_OPTS[@]}" update
    log "apt-get install ${missing[*]}"
    retry apt-get "${APT_OPTS[@]}" install --no-install-recommends "${missing[@]}"
else
    log "all packages already installed"
fi

# --- docker ---------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    log "dockerd already running"
else
    log "starting dockerd (--iptables=false --bridge=none), log /tmp/dockerd.log"
    nohup dockerd --iptables=false --bridge=none >/tmp/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 30 /tmp/dockerd.log >&2 || true
        echo "dockerd did not come up" >&2
        exit 1
    fi
    log "dockerd is up"
fi

IMAGE=agentic-sched/busybox:test
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE present"
else
    log "building $IMAGE from /bin/busybox"
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
    echo 'root:x:0:' >"$rootfs/etc/group"
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE"
    rm -rf "$rootfs"
fi

# --- libvirt / qemu -------------------------------------------------------------------
if [ -e /dev/kvm ]; then
    log "chgrp kvm /dev/kvm; chmod 660 /dev/kvm"
    chgrp kvm /dev/kvm || true
    chmod 660 /dev/kvm || true
fi

if virsh -c qemu:///system list >/dev/null 2>&1; then
    log "libvirtd already running"
else
    pgrep -x virtlogd >/dev/null || { log "starting virtlogd -d"; virtlogd -d; }
    pgrep -x libvirtd >/dev/null || { log "starting libvirtd -d"; libvirtd -d; }
    for _ in $(seq 1 60); do
        virsh -c qemu:///system list >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! virsh -c qemu:///system list >/dev/null 2>&1; then
        echo "libvirtd did not come up (virsh -c qemu:///system list fails)" >&2
        exit 1
    fi
    log "libvirtd is up"
fi

mkdir -p /run/sshd
log "done"
