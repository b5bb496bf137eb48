#!/usr/bin/env bash
# Whole-process start-up of a microVM, measured the way a user sees it: spawn → the process
# has exited and been reaped. Every command is a direct child of one measuring process, and the
# commands alternate (A B A B ...), so load on the machine hits them alike. Prints median, p90
# and min of each, in milliseconds.
#
#   scripts/vm-startup.sh [RUNS]          /bin/true against `isolab vm run --guest stub:true`
#   scripts/vm-startup.sh --pvh [RUNS]    adds the PVH stub image under isolab and under
#                                         `qemu-system-x86_64 -M microvm` (same guest, same RAM)
#
# ISOLAB=path picks the binary (default: $CARGO_TARGET_DIR or target/, release build);
# ISOLAB_BEFORE=path adds the same command run by another build (before/after a change);
# ISOLAB_VM_ARGS replaces `--guest stub:true`. On a machine busy with other work, run it under
# `chrt -f 10` (SCHED_FIFO, inherited by every command) so that the other work does not decide
# the figures; say so when reporting them.
set -euo pipefail
pvh=0
if [ "${1:-}" = "--pvh" ]; then pvh=1; shift; fi
runs=${1:-40}
here=$(cd "$(dirname "$0")/.." && pwd)
isolab=${ISOLAB:-${CARGO_TARGET_DIR:-$here/target}/release/isolab}
[ -x "$isolab" ] || { echo "vm-startup: $isolab not found: cargo build --release -p isolab-cli" >&2; exit 1; }
[ -e /dev/kvm ] || { echo "vm-startup: not measured here: /dev/kvm is missing" >&2; exit 1; }
read -r -a vm_args <<<"${ISOLAB_VM_ARGS:---guest stub:true}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$pvh" = 1 ]; then
  command -v qemu-system-x86_64 >/dev/null || { echo "vm-startup: --pvh needs qemu-system-x86_64 (scripts/setup.sh)" >&2; exit 1; }
  "$isolab" vm stub-image --out "$work/stub-pvh.elf"
fi
python3 - "$runs" "$pvh" "$work/stub-pvh.elf" "$isolab" "${ISOLAB_BEFORE:-}" "${vm_args[@]}" <<'PY'
import os, shutil, sys, time

runs, pvh, image, isolab = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
before, vm_args = sys.argv[5], sys.argv[6:]
rows = [
    ("/bin/true", ["/bin/true"], 0),
    ("isolab vm run " + " ".join(vm_args), [isolab, "vm", "run", *vm_args], 0),
]
if before:
    rows.append(("  the same, ISOLAB_BEFORE build", [before, "vm", "run", *vm_args], 0))
if pvh:
    rows.append(("isolab PVH stub (--kernel, --debug-exit)",
                 [isolab, "vm", "run", "--debug-exit", "--memory", "64M", "--kernel", image], 0))
    # QEMU's isa-debug-exit turns the guest's 0 into exit status (0 << 1) | 1 = 1.
    rows.append(("qemu -M microvm, PVH stub",
                 [shutil.which("qemu-system-x86_64"), "-M", "microvm", "-accel", "kvm",
                  "-cpu", "host,-arch-capabilities,-cx16", "-nodefaults", "-no-user-config",
                  "-nographic", "-display", "none",
                  "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "64M",
                  "-kernel", image], 1))
null = os.open(os.devnull, os.O_WRONLY)

def once(argv, expected):
    # posix_spawn (vfork-like in glibc) keeps the parent's own cost small and equal for all.
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter_ns() - start
    code = os.waitstatus_to_exitcode(status)
    if code != expected:
        sys.exit(f"vm-startup: {' '.join(argv)} exited with {code}, expected {expected}")
    return elapsed / 1e6

for _, argv, expected in rows:  # one warm-up each: page cache, binaries mapped
    once(argv, expected)
samples = [[] for _ in rows]
for _ in range(runs):
    for i, (_, argv, expected) in enumerate(rows):
        samples[i].append(once(argv, expected))

def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]

for (name, _, _), xs in zip(rows, samples):
    print(f"{name:48s} median {q(xs, 0.5):7.3f} ms  p90 {q(xs, 0.9):7.3f} ms  "
          f"min {min(xs):7.3f} ms  ({len(xs)} runs, interleaved)")
PY
