#!/usr/bin/env bash
# Builds isolab's Linux microVM guest: kernel (vmlinux + bzImage), the static /init, and an
# uncompressed initramfs. Idempotent and cached: the outputs are keyed by a hash of the kernel
# config fragment, the linux-source package version, the init sources and this script; when the
# outputs for the current key exist it says so and exits at once.
#
# Outputs, in ${ISOLAB_CACHE:-/var/cache/isolab}/guest/:
#   vmlinux          ELF kernel with the PVH entry note (what isolab's VMM loads)
#   bzImage          the same kernel in the Linux boot-protocol format
#   initramfs.cpio   uncompressed newc cpio: /init, /dev/{console,null,mem}, /proc, /sys, /tmp
#   init             the static /init binary itself
#   kernel.release   e.g. 6.1.192
#   kernel.config    the full .config that was built
#   cache-key        the key of the outputs above
#
# Usage: scripts/build-guest.sh [--force] [--qemu-check]
#   --qemu-check  afterwards, boot vmlinux + initramfs in QEMU (-M microvm, KVM) and require the
#                 kernel banner and our command line on the serial console; prints the time to
#                 the banner and any `isolab:` lines (installs qemu-system-x86 if missing).
# Environment: ISOLAB_CACHE (cache root), ISOLAB_JOBS (make -j, default: nproc),
#              ISOLAB_QEMU_TIMEOUT (seconds for --qemu-check, default 30).
# Needs root only to install missing Debian packages (apt-get, non-interactive).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$REPO/scripts/build-guest.sh"
CACHE="${ISOLAB_CACHE:-/var/cache/isolab}/guest"
FRAGMENT="$REPO/guests/kernel/microvm.config"
INIT_DIR="$REPO/guests/init"
JOBS="${ISOLAB_JOBS:-$(nproc)}"
ARCH=x86_64
RUST_TARGET=x86_64-unknown-linux-gnu
FORCE=0
QEMU_CHECK=0

log() { printf 'build-guest: %s\n' "$*"; }
die() {
    printf 'build-guest: error: %s\n' "$*" >&2
    exit 1
}

for arg in "$@"; do
    case "$arg" in
    --force) FORCE=1 ;;
    --qemu-check) QEMU_CHECK=1 ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SCRIPT"
        exit 0
        ;;
    *) die "unknown argument '$arg'; usage: scripts/build-guest.sh [--force] [--qemu-check]" ;;
    esac
done

OUTPUTS=(vmlinux bzImage initramfs.cpio init kernel.release kernel.config)

# The newest linux-source tarball installed by Debian's linux-source-X.Y package.
source_tarball() {
    local t
    t=$(find /usr/src -maxdepth 1 -name 'linux-source-*.tar.xz' 2>/dev/null | sort -V | tail -n 1 || true)
    printf '%s' "$t"
}

# Cache key: fragment + linux-source package version + init sources + this script.
cache_key() {
    local tarball=$1 name version
    name=$(basename "$tarball" .tar.xz)
    version=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || stat -c '%s-%Y' "$tarball")
    {
        printf 'linux-source %s %s\n' "$name" "$version"
        sha256sum "$FRAGMENT" "$SCRIPT" | awk '{print $1}'
        (cd "$INIT_DIR" && find Cargo.toml Cargo.lock src -type f -print0 | sort -z |
            xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

outputs_present() {
    local f
    for f in "${OUTPUTS[@]}"; do [ -s "$CACHE/$f" ] || return 1; done
}

fast_path() {
    local tarball key
    tarball=$(source_tarball)
    [ "$FORCE" = 0 ] && [ -n "$tarball" ] && [ -f "$CACHE/cache-key" ] || return 1
    key=$(cache_key "$tarball")
    [ "$(cat "$CACHE/cache-key")" = "$key" ] && outputs_present || return 1
    log "up to date: $CACHE (key $key, kernel $(cat "$CACHE/kernel.release"))"
}

qemu_check() {
    [ "$QEMU_CHECK" = 1 ] || return 0
    if ! command -v qemu-system-x86_64 >/dev/null; then
        [ "$(id -u)" = 0 ] || die "qemu-system-x86_64 missing; apt-get install qemu-system-x86"
        log "installing qemu-system-x86"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
    fi
    [ -w /dev/kvm ] || die "--qemu-check needs /dev/kvm"
    local limit="${ISOLAB_QEMU_TIMEOUT:-30}" tag="check$$" log="$CACHE/build/qemu-check.log" t0 now pid banner=""
    # reboot=t + -no-reboot: QEMU's microvm has no i8042, so a triple fault ends the run there.
    local append="console=ttyS0 earlyprintk=serial,ttyS0 reboot=t panic=-1 nomodule pci=off isolab.workload=syscall isolab.check=$tag"
    log "qemu-check: booting vmlinux + initramfs.cpio (up to ${limit} s, log: $log)"
    t0=$(date +%s%N)
    qemu-system-x86_64 -M microvm -enable-kvm -cpu host,-arch-capabilities,-cx16 -m 256 \
        -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -kernel "$CACHE/vmlinux" -initrd "$CACHE/initramfs.cpio" -append "$append" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null' EXIT
    while kill -0 "$pid" 2>/dev/null; do
        now=$(date +%s%N)
        if [ -z "$banner" ] && grep -q 'Linux version' "$log"; then
            banner=$(((now - t0) / 1000000))
            log "qemu-check: 'Linux version' after ~${banner} ms"
        fi
        grep -q 'isolab: poweroff' "$log" && break
        # QEMU pauses the VM (it does not exit) after a KVM emulation failure.
        grep -q 'KVM internal error' "$log" && sleep 0.2 && break
        [ $(((now - t0) / 1000000000)) -ge "$limit" ] && break
        sleep 0.02
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    grep -a 'isolab: ' "$log" | sed 's/^/build-guest: qemu-check: guest: /' || true
    grep -aq "Command line: .*isolab.check=$tag" "$log" ||
        die "qemu-check: the kernel did not print its banner and our command line within ${limit} s; see $log"
    if grep -aq 'isolab: poweroff' "$log"; then
        log "qemu-check: ok, the guest reached /init and powered off"
    else
        log "qemu-check: ok (banner + command line); /init not reached$(grep -aq 'KVM internal error' "$log" && echo ': KVM emulation failure, expected on a PVM host (guests/README.md)')"
    fi
}

fast_path && { qemu_check; exit 0; }

mkdir -p "$CACHE/build" "$CACHE/src"
# One builder at a time; a second one waits, then finds the fresh outputs.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    log "another build-guest.sh is running; waiting for it"
    flock 9
fi
fast_path && { qemu_check; exit 0; }

# ---- 1. host packages -------------------------------------------------------------------
PACKAGES=(linux-source flex bison libelf-dev libssl-dev bc make gcc libc6-dev xz-utils lz4 binutils)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
        log "apt-get update (package lists missing or older than a day)"
        apt-get update -qq
    fi
    log "installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found in PATH; install Rust (https://rustup.rs) to build guests/init"

TARBALL=$(source_tarball)
[ -n "$TARBALL" ] || die "no /usr/src/linux-source-*.tar.xz after installing linux-source"
KEY=$(cache_key "$TARBALL")
SRC_NAME=$(basename "$TARBALL" .tar.xz)
SRC_VERSION=$(dpkg-query -W -f='${Version}' "$SRC_NAME" 2>/dev/null || echo unknown)
SRC="$CACHE/src/$SRC_NAME"
OBJ="$CACHE/build/kernel-${SRC_NAME#linux-source-}"
log "key $KEY: $SRC_NAME $SRC_VERSION, fragment $(basename "$FRAGMENT"), -j$JOBS"

# ---- 2. kernel source ----------------------------------------------------------------------
if [ "$(cat "$SRC/.isolab-unpacked" 2>/dev/null)" != "$SRC_VERSION" ]; then
    log "unpacking $TARBALL (~15 s)"
    rm -rf "$SRC" "$OBJ"
    tar -C "$CACHE/src" -xf "$TARBALL"
    [ -f "$SRC/Makefile" ] || die "$TARBALL did not unpack to $SRC"
    printf '%s' "$SRC_VERSION" >"$SRC/.isolab-unpacked"
fi

# ---- 3. configure: tinyconfig + fragment -----------------------------------------------------
mkdir -p "$OBJ"
# Fixed build identity: the version banner does not change from one build to the next.
export KBUILD_BUILD_TIMESTAMP="${SOURCE_DATE_EPOCH:+@$SOURCE_DATE_EPOCH}"
export KBUILD_BUILD_TIMESTAMP="${KBUILD_BUILD_TIMESTAMP:-1970-01-01 00:00:00 UTC}"
export KBUILD_BUILD_USER=isolab KBUILD_BUILD_HOST=isolab KBUILD_BUILD_VERSION=1
KMAKE=(make -C "$SRC" O="$OBJ" ARCH="$ARCH")
log "configuring: tinyconfig + $(basename "$FRAGMENT")"
"${KMAKE[@]}" -s tinyconfig >"$CACHE/build/merge_config.log" 2>&1
"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" "$FRAGMENT" >>"$CACHE/build/merge_config.log" 2>&1 ||
    die "merge_config.sh failed; see $CACHE/build/merge_config.log"
"${KMAKE[@]}" -s olddefconfig >>"$CACHE/build/merge_config.log" 2>&1

# Kconfig drops a symbol silently when its dependencies are unmet: check every line survived.
bad=()
while IFS= read -r line; do
    grep -qxF "$line" "$OBJ/.config" || bad+=("$line")
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$FRAGMENT")
while IFS= read -r sym; do
    grep -q "^$sym=" "$OBJ/.config" && bad+=("$sym should be off")
done < <(sed -nE 's/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1/p' "$FRAGMENT")
# What a microVM guest cannot boot without, whatever the fragment says.
for must in CONFIG_64BIT=y CONFIG_PVH=y CONFIG_SERIAL_8250=y CONFIG_SERIAL_8250_CONSOLE=y \
    CONFIG_BLK_DEV_INITRD=y CONFIG_BINFMT_ELF=y CONFIG_PROC_FS=y CONFIG_SYSFS=y CONFIG_DEVTMPFS=y \
    CONFIG_TTY=y CONFIG_PRINTK=y CONFIG_KVM_GUEST=y CONFIG_PARAVIRT=y CONFIG_X86_IOPL_IOPERM=y \
    CONFIG_SMP=y; do
    grep -qxF "$must" "$OBJ/.config" || bad+=("$must (required)")
done
grep -q '^CONFIG_MODULES=y' "$OBJ/.config" && bad+=("CONFIG_MODULES should be off")
[ ${#bad[@]} -eq 0 ] || die "kernel config is missing what the guest needs: ${bad[*]}"
log "config verified ($(grep -c '=y' "$OBJ/.config") symbols on)"

# ---- 4. kernel build -------------------------------------------------------------------------
log "building vmlinux + bzImage (about 2 min at -j2 from scratch; log: $CACHE/build/kernel.log)"
start=$(date +%s)
if ! "${KMAKE[@]}" -j"$JOBS" vmlinux bzImage >"$CACHE/build/kernel.log" 2>&1; then
    tail -n 30 "$CACHE/build/kernel.log" >&2
    die "kernel build failed; full log: $CACHE/build/kernel.log"
fi
log "kernel built in $(($(date +%s) - start)) s"
# The PVH entry point is an ELF note of type XEN_ELFNOTE_PHYS32_ENTRY (18) owned by "Xen".
readelf -n "$OBJ/vmlinux" | grep -A1 -E '^ +Xen ' | grep -qiE '0x00000012|PHYS32_ENTRY' ||
    die "vmlinux has no PVH (XEN_ELFNOTE_PHYS32_ENTRY) note; CONFIG_PVH did not take effect"
RELEASE=$(cat "$OBJ/include/config/kernel.release")

# ---- 5. the static /init -----------------------------------------------------------------------
log "building guests/init (static, release)"
INIT_TARGET="$CACHE/build/init-target"
# The explicit --target keeps +crt-static away from build scripts and proc-macros.
(cd "$INIT_DIR" && env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS='-C target-feature=+crt-static' \
    CARGO_TARGET_DIR="$INIT_TARGET" cargo build --quiet --release --locked --target "$RUST_TARGET") ||
    die "cargo build of guests/init failed"
INIT_BIN="$INIT_TARGET/$RUST_TARGET/release/isolab-guest-init"
readelf -l "$INIT_BIN" | grep -q INTERP && die "$INIT_BIN is dynamically linked; the initramfs has no libc"

# ---- 6. initramfs ----------------------------------------------------------------------------
# The kernel's own packer, gen_init_cpio, takes a text list and writes a newc archive: device
# nodes need no root and no mknod on the host. Uncompressed on purpose (see guests/README.md).
GEN="$CACHE/build/gen_init_cpio"
if [ ! -x "$GEN" ] || [ "$SRC/usr/gen_init_cpio.c" -nt "$GEN" ]; then
    cc -O2 -o "$GEN" "$SRC/usr/gen_init_cpio.c" || die "compiling gen_init_cpio failed"
fi
# Staged copy with mtime 0, so the same sources give a byte-identical archive.
STAGED_INIT="$CACHE/build/init.staged"
install -m 0755 "$INIT_BIN" "$STAGED_INIT"
touch -d @0 "$STAGED_INIT"
LIST="$CACHE/build/initramfs.list"
cat >"$LIST" <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/null 0666 0 0 c 1 3
nod /dev/mem 0600 0 0 c 1 1
dir /proc 0555 0 0
dir /sys 0555 0 0
dir /tmp 1777 0 0
file /init $STAGED_INIT 0755 0 0
EOF
"$GEN" -t 0 "$LIST" >"$CACHE/initramfs.cpio.tmp" || die "gen_init_cpio failed"

# ---- 7. publish ------------------------------------------------------------------------------
install -m 0644 "$OBJ/vmlinux" "$CACHE/vmlinux.tmp"
install -m 0644 "$OBJ/arch/x86/boot/bzImage" "$CACHE/bzImage.tmp"
install -m 0755 "$INIT_BIN" "$CACHE/init.tmp"
install -m 0644 "$OBJ/.config" "$CACHE/kernel.config.tmp"
printf '%s\n' "$RELEASE" >"$CACHE/kernel.release.tmp"
for f in "${OUTPUTS[@]}"; do mv -f "$CACHE/$f.tmp" "$CACHE/$f"; done
printf '%s\n' "$KEY" >"$CACHE/cache-key"
log "done: kernel $RELEASE -> $CACHE"
for f in vmlinux bzImage initramfs.cpio init; do
    log "  $(printf '%-15s' "$f") $(stat -c %s "$CACHE/$f") bytes"
done
qemu_check
