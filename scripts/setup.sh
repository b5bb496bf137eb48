#!/usr/bin/env bash
# Installs what isolab needs on a fresh Debian machine, idempotently: the peers it measures
# against (crun, runc, bubblewrap, podman, QEMU), busybox-static for the default image, iproute2 for
# bridge networking, hyperfine for reference timings. Fast when everything is already there.
#
#   scripts/setup.sh            # packages only
#   scripts/setup.sh --guest    # also build the microVM guest kernel + initramfs (cached)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: isolab needs root for namespaces, cgroups and /dev/kvm; run: sudo $0" >&2
    exit 1
fi

# The Debian cloud kernel (and lz4, to unpack its vmlinux) is the "any distro kernel" guest the
# microVM tests boot besides isolab's own kernel.
packages=(busybox-static crun runc bubblewrap podman iproute2 iputils-ping hyperfine cpio
          qemu-system-x86 linux-image-cloud-amd64 lz4)
# Docker (the articles' own runtime; `isolab bench` starts a private dockerd for its rows and
# stops it) and gVisor's runsc (a third isolation level: a kernel in user space; the labs' and the
# bench's application-kernel rung).
packages+=(docker.io runsc)
# Chromium: the report tests render `isolab report`'s page in a real headless browser.
packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists unless apt-get update ran in the last day.
    stamp=/var/lib/apt/periodic/update-success-stamp
    lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)
    if [ -z "$lists" ] && [ ! -e "$stamp" -o -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
        apt-get update -qq
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: packages present (${packages[*]})"
fi

if [ "${1:-}" = "--guest" ] && [ -x "$(dirname "$0")/build-guest.sh" ]; then
    "$(dirname "$0")/build-guest.sh"
fi
