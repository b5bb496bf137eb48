#!/usr/bin/env bash
# Whole-process start-up of `isolab vm run --guest stub:true`, measured the way a user sees it:
# spawn → the process has exited and been reaped, against `/bin/true` as the floor.
#
# Both commands are direct children of one measuring process and alternate (A B A B ...), so
# load on this machine hits both alike. Prints median and p90 of each, in milliseconds.
#
#   scripts/vm-startup.sh [RUNS] [ISOLAB]        (defaults: 40, target/release/isolab)
#   ISOLAB_VM_ARGS="--guest stub:true --memory 64M" scripts/vm-startup.sh 60
set -euo pipefail
runs=${1:-40}
here=$(cd "$(dirname "$0")/.." && pwd)
isolab=${2:-${CARGO_TARGET_DIR:-$here/target}/release/isolab}
[ -x "$isolab" ] || { echo "vm-startup: $isolab not found: cargo build --release -p isolab-cli" >&2; exit 1; }
[ -e /dev/kvm ] || { echo "vm-startup: not measured here: /dev/kvm is missing" >&2; exit 1; }
read -r -a vm_args <<<"${ISOLAB_VM_ARGS:---guest stub:true}"
exec python3 - "$runs" /bin/true "$isolab" vm run "${vm_args[@]}" <<'PY'
import os, sys, time

runs = int(sys.argv[1])
floor = [sys.argv[2]]
vm = sys.argv[3:]
null = os.open(os.devnull, os.O_WRONLY)

def once(argv):
    # posix_spawn (vfork-like in glibc) keeps the parent's own cost small and equal for both.
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter_ns() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"vm-startup: {' '.join(argv)} failed with status {status}")
    return elapsed / 1e6

for argv in (floor, vm):  # one warm-up each: page cache, binary mapped
    once(argv)
samples = {"floor": [], "vm": []}
for _ in range(runs):
    samples["floor"].append(once(floor))
    samples["vm"].append(once(vm))

def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]

for name, argv in (("floor", floor), ("vm", vm)):
    xs = samples[name]
    print(f"{' '.join(argv):55s} median {q(xs, 0.5):6.3f} ms  p90 {q(xs, 0.9):6.3f} ms  "
          f"min {min(xs):6.3f} ms  ({len(xs)} runs, interleaved)")
PY
