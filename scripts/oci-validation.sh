#!/usr/bin/env bash
# Runs the OCI runtime validation suite (opencontainers/runtime-tools, its `validation/` tests)
# against OCI runtimes, offline, and prints one line per test or a test x runtime table.
#
# The suite drives a runtime through its command line only (create, start, state, kill, delete),
# the same interface runc and crun expose. Most tests copy `runtimetest` into the bundle and run it
# as the container process: it checks from inside that the spec was applied (mounts, capabilities,
# rlimits, namespaces...) and prints TAP, which the outer test relays. So a result here says what a
# container *sees*, not what the runtime claims.
#
#   scripts/oci-validation.sh --setup-only                   # build the suite once (cached)
#   scripts/oci-validation.sh /usr/sbin/runc                 # one runtime, one line per test
#   scripts/oci-validation.sh --compare                      # runc, crun, isolab-runtime table
#   scripts/oci-validation.sh --only 'linux_cgroups' /usr/bin/crun
#
# Exit status: 0 when every run completed (failing tests are results, not errors), 1 on a usage or
# setup error, 77 when the suite cannot be built here (no apt-get, no source) and was skipped.
set -euo pipefail

# The suite is pinned to the commit Debian bookworm packages (0.9.0+git20220423.g0105384): its
# vendor/ tree builds with bookworm's Go 1.19 and nothing else. Newer commits need Go >= 1.21.
RUNTIME_TOOLS_REV=${RUNTIME_TOOLS_REV:-0105384f68e16803891d0a17d9067b1def6a2778}
RUNTIME_TOOLS_URL=${RUNTIME_TOOLS_URL:-https://github.com/opencontainers/runtime-tools}
CACHE=${ISOLAB_OCIV_CACHE:-/var/cache/isolab/runtime-tools}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO_ROOT/scripts/oci-validation.sh

usage() {
    cat <<EOF
usage: $0 [options] [RUNTIME...]

Runs every runtime-tools validation test against each RUNTIME (a path or a name on PATH; default:
\$RUNTIME, else runc) and prints: test, verdict, ok/not-ok/skip counts out of the TAP plan, seconds.

options:
  --compare          run runc, crun and the isolab runtime; print a test x runtime table
  --isolab PATH      the isolab runtime for --compare (default: target/release/isolab-runtime;
                     skipped with a message when it is not built)
  --only REGEX       run only tests whose name matches REGEX (grep -E)
  --timeout SECS     kill a test after SECS seconds (default 60); its verdict is TIMEOUT
  --logs DIR         keep each test's TAP output and stderr in DIR (default: $CACHE/results)
  --markdown FILE    also write the comparison table as Markdown to FILE
  --src PATH         runtime-tools source: a git repository (checked out at the pinned commit
                     \$RUNTIME_TOOLS_REV) or a source tree (also \$RUNTIME_TOOLS_SRC);
                     default: a clone of $RUNTIME_TOOLS_URL
  --setup-only       install and build the suite, run nothing
  -h, --help         this text

Verdicts: PASS every TAP point ok; FAIL some point not ok; SKIP every point skipped;
ERROR the test exited non-zero or printed fewer points than its plan; TIMEOUT killed by --timeout.

Each run happens in a private mount namespace with /sys/fs/cgroup/unified unmounted: on this
hybrid cgroup host crun refuses to start containers otherwise. Runtimes that accept --root get a
private state directory, and containers a test leaves behind are force-deleted after it.
EOF
}

die() { echo "oci-validation: $*" >&2; exit 1; }
skip() { echo "oci-validation: SKIP: $*" >&2; exit 77; }
say() { echo "oci-validation: $*" >&2; }

# --- setup: Go, source, rootfs, binaries (each step cached in $CACHE) ---------------------------

ensure_go() {
    command -v go >/dev/null && return
    command -v apt-get >/dev/null ||
        skip "Go is not installed and apt-get is unavailable; install Go >= 1.16 and rerun"
    say "installing golang-go (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go git \
        >/dev/null || skip "apt-get could not install golang-go; install Go >= 1.16 and rerun"
}

# Debian's golang-github-opencontainers-runtime-tools-dev ships only the library packages (no
# validation/, no cmd/runtimetest, no rootfs tarball), so the suite comes from a git source.
fetch_source() {
    local src=$1 dest=$CACHE/src
    if [ -f "$CACHE/src.rev" ] && [ "$(cat "$CACHE/src.rev")" = "$RUNTIME_TOOLS_REV" ] &&
        [ -d "$dest/validation" ]; then
        return
    fi
    rm -rf "${dest:?}" "${CACHE:?}/bin" "$CACHE/src.rev"
    mkdir -p "$dest"
    if [ -z "$src" ]; then
        src=$CACHE/git
        if [ ! -d "$src" ]; then
            say "cloning $RUNTIME_TOOLS_URL"
            timeout 120 git clone -q --bare "$RUNTIME_TOOLS_URL" "$src" 2>/dev/null || {
                rm -rf "$src" "$dest"
                skip "cannot clone $RUNTIME_TOOLS_URL (offline?); pass --src with a runtime-tools" \
                    "git repository or source tree"
            }
        fi
    fi
    if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$src" cat-file -e "$RUNTIME_TOOLS_REV^{commit}" 2>/dev/null ||
            die "$src lacks commit $RUNTIME_TOOLS_REV; fetch it or set RUNTIME_TOOLS_REV"
        git -C "$src" archive "$RUNTIME_TOOLS_REV" | tar -x -C "$dest"
    elif [ -d "$src/validation" ] && [ -d "$src/cmd/runtimetest" ]; then
        cp -a "$src/." "$dest/"
    else
        die "$src is neither a git repository nor a runtime-tools tree (no validation/)"
    fi
    echo "$RUNTIME_TOOLS_REV" >"$CACHE/src.rev"
}

# The tests unpack rootfs-<goarch>.tar.gz from their working directory into every bundle. The
# upstream tree carries a busybox one; a source without it gets an equivalent from busybox-static.
ensure_rootfs() {
    local tarball=$CACHE/src/rootfs-amd64.tar.gz root
    [ -f "$tarball" ] && return
    [ -x /bin/busybox ] || {
        command -v apt-get >/dev/null || skip "no rootfs tarball and no /bin/busybox to build one"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    }
    say "building rootfs-amd64.tar.gz from /bin/busybox"
    root=$(mktemp -d)
    chmod 755 "$root"
    mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -czf "$tarball" -C "$root" .
    rm -rf "$root"
}

# runtimetest runs inside minimal rootfs images, so it is linked statically (as upstream does).
build_suite() {
    [ -x "$CACHE/bin/runtimetest" ] && [ -f "$CACHE/bin/.complete" ] && return
    say "building runtimetest and the validation tests (about a minute on 2 cores)"
    mkdir -p "$CACHE/bin"
    (
        cd "$CACHE/src"
        export GOCACHE=$CACHE/gocache GOFLAGS=-mod=vendor GO111MODULE=on CGO_ENABLED=0
        nice go build -p 1 -tags "netgo osusergo" -o "$CACHE/bin/runtimetest" ./cmd/runtimetest
        nice go build -p 1 -o "$CACHE/bin/" ./validation/...
    ) || die "building the suite failed (see the Go errors above)"
    # The tests copy runtimetest and unpack the rootfs tarball from their working directory; a
    # symlink would be copied as a symlink, dangling inside the container.
    cp "$CACHE/bin/runtimetest" "$CACHE/src/runtimetest"
    touch "$CACHE/bin/.complete"
}

setup() {
    [ "$(id -u)" -eq 0 ] || die "the suite creates containers and needs root; run: sudo $0"
    mkdir -p "$CACHE"
    ensure_go
    command -v git >/dev/null || die "git is needed to unpack the suite; apt-get install git"
    fetch_source "$1"
    ensure_rootfs
    build_suite
}

# --- running (inside the private mount namespace) -----------------------------------------------

list_tests() {
    find "$CACHE/bin" -maxdepth 1 -type f -perm -u+x ! -name runtimetest -printf '%f\n' | sort |
        grep -E -- "${ONLY:-.}" || true
}

# Counts TAP points at column 0 (diagnostics are indented YAML) and prints "ok notok skip planned".
# Some tests print several TAP streams (one plan each, summed here). The hook tests print no points
# at all and report a failure only as an "error" diagnostic: counted as one "not ok".
tap_counts() {
    awk '
        /^1\.\.[0-9]+/ { sub(/^1\.\./, ""); plan += $0 + 0 }
        /^ok / { if (tolower($0) ~ /# skip/) skip++; else ok++ }
        /^not ok / { if (tolower($0) ~ /# skip/) skip++; else notok++ }
        /^    "error": / { diag_error = 1 }
        END {
            if (ok + notok + skip == 0 && diag_error) notok = 1
            printf "%d %d %d %d\n", ok, notok, skip, plan
        }' "$1"
}

verdict() {
    local rc=$1 ok=$2 notok=$3 skip=$4 plan=$5
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo TIMEOUT
    elif [ "$notok" -gt 0 ]; then echo FAIL
    elif [ "$rc" -ne 0 ] || [ $((ok + skip)) -lt "$plan" ]; then echo ERROR
    elif [ "$plan" -eq 0 ]; then echo PASS  # a diagnostics-only test with no "error"
    elif [ "$ok" -eq 0 ]; then echo SKIP
    else echo PASS
    fi
}

# A runtime that takes the global --root flag (runc, crun) gets a private state directory through
# a wrapper, so leftovers can be listed and removed without touching anyone else's containers.
make_runtime_cmd() {
    local rt=$1 dir=$2
    if "$rt" --help 2>&1 | grep -q -- '--root'; then
        mkdir -p "$dir/state"
        printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$rt" "$dir/state" >"$dir/runtime"
        chmod +x "$dir/runtime"
        echo "$dir/runtime"
    else
        echo "$rt"
    fi
}

remove_leftovers() {
    local cmd=$1 work=$2 id n=0
    [ "$cmd" = "$work/runtime" ] || { echo 0; return; }
    for id in $("$cmd" list -q 2>/dev/null); do
        "$cmd" delete -f "$id" >/dev/null 2>&1 || true
        n=$((n + 1))
    done
    echo "$n"
}

# A test whose container shares the runner's mount namespace (linux_ns_itype) leaves the
# container's /proc, /dev, /sys mounted inside its bundle. They live only in this private
# namespace, but the bundle cannot be removed until they are unmounted, deepest first.
unmount_under() {
    local m
    awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# The cgroup tests use the fixed cgroupsPath "/cgrouptest" and "testdir/cgrouptest/container".
# Runtimes remove the leaf on delete but not the parents they created (runc and crun put the
# relative path under the hierarchy root; a runtime may also resolve it against its own cgroup),
# so this removes them, deepest first; rmdir only ever removes empty groups.
remove_test_cgroups() {
    local hier own base prefix d
    while IFS=: read -r _ hier own; do
        hier=${hier#name=}
        base=/sys/fs/cgroup/${hier%%,*}
        [ -n "$hier" ] || base=/sys/fs/cgroup/unified
        mountpoint -q "$base" || continue
        for prefix in "${own%/}" ""; do
            for d in testdir/cgrouptest/container testdir/cgrouptest testdir cgrouptest; do
                if [ -d "$base$prefix/$d" ]; then rmdir "$base$prefix/$d" 2>/dev/null || true; fi
            done
        done
    done </proc/self/cgroup
}

# One line on why a test did not pass: the runtime's error message (runc logs msg="..."), else the
# first failing TAP point, else the test's "error" diagnostic, else its own stderr.
first_reason() {
    local r
    r=$(grep -m1 -o 'msg="[^"]*' "$1.stderr" | cut -c6-)
    [ -n "$r" ] || r=$(grep -m1 '^not ok' "$1.tap")
    [ -n "$r" ] || r=$(grep -m1 -o '^    "error": "[^\\"]*' "$1.tap" | cut -c15-)
    [ -n "$r" ] || r=$(grep -m1 -v -E '^(failed to (create|start) the container|exit status [0-9]+)$' \
        "$1.stderr")
    printf '%s' "$r" | tr '\t' ' ' | cut -c1-200
}

# Runs every test against one runtime, printing a line per test as it goes, and writes
# "test verdict ok notok skip plan secs leftovers exit-status reason" rows to $logs/results.tsv.
run_inner() {
    local rt=$1 logs=$2 work cmd t rc start secs counts v left
    # This namespace is a slave of the host's: the umount stays here. Made shared again below it,
    # so tests of rootfsPropagation see mounts travel between it and their containers.
    if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
    mount --make-rshared /
    work=$(mktemp -d /tmp/oci-validation.XXXXXX)
    cmd=$(make_runtime_cmd "$rt" "$work")
    # timeout(1) runs the test in its own process group, out of reach of the terminal's Ctrl-C:
    # stop it here, then remove what it left.
    WORK=$work CMD=$cmd CHILD=""
    trap 'unmount_under "$WORK"; rm -rf --one-file-system "$WORK"' EXIT
    trap '[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null; wait; remove_leftovers "$CMD" "$WORK" \
        >/dev/null; exit 130' INT TERM
    mkdir -p "$logs" && : >"$logs/results.tsv"
    printf '%-36s %-7s %5s %6s %5s %5s %6s\n' TEST VERDICT OK NOT_OK SKIP PLAN SECS
    cd "$CACHE/src"
    for t in $(list_tests); do
        mkdir -p "$work/tmp"
        start=$(date +%s%N)
        rc=0
        TMPDIR=$work/tmp RUNTIME=$cmd timeout -k 5 "$TIMEOUT" "$CACHE/bin/$t" \
            >"$logs/$t.tap" 2>"$logs/$t.stderr" </dev/null &
        CHILD=$!
        wait "$CHILD" || rc=$?
        CHILD=
        secs=$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
        counts=$(tap_counts "$logs/$t.tap")
        # shellcheck disable=SC2086
        v=$(verdict "$rc" $counts)
        left=$(remove_leftovers "$cmd" "$work")
        remove_test_cgroups
        unmount_under "$work/tmp"
        rm -rf --one-file-system "$work/tmp"
        # shellcheck disable=SC2086
        set -- $counts
        printf '%-36s %-7s %5s %6s %5s %5s %6s%s\n' "$t" "$v" "$1" "$2" "$3" "$4" "$secs" \
            "$([ "$left" -gt 0 ] && echo "  (removed $left leftover containers)")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$v" "$1" "$2" "$3" "$4" "$secs" \
            "$left" "$rc" "$([ "$v" = PASS ] || first_reason "$logs/$t")" >>"$logs/results.tsv"
    done
}

run_one() {
    local rt=$1 name logs
    name=$(basename "$rt")
    logs=$LOGS/$name
    say "running the suite against $rt ($("$rt" --version 2>/dev/null | head -n1))"
    unshare -m --propagation slave env ONLY="$ONLY" TIMEOUT="$TIMEOUT" ISOLAB_OCIV_CACHE="$CACHE" \
        bash "$SELF" --inner "$rt" "$logs"
    awk -F'\t' '{ n[$2]++ } END { printf "oci-validation: '"$name"': %d PASS, %d FAIL, %d SKIP, \
%d ERROR, %d TIMEOUT (TAP logs in '"$logs"')\n", n["PASS"], n["FAIL"], n["SKIP"], n["ERROR"], \
n["TIMEOUT"] }' "$logs/results.tsv" >&2
}

# Joins the per-runtime results into one table; a cell is "VERDICT ok/plan".
compare_table() {
    local names=("$@") md=${MARKDOWN:-/dev/null} n t row cell
    {
        printf '| test |'; printf ' %s |' "${names[@]}"; echo
        printf '|---|'; printf -- '---|%.0s' "${names[@]}"; echo
    } >"$md"
    printf '%-36s' TEST; printf ' %-16s' "${names[@]}"; echo
    while IFS=$'\t' read -r t _; do
        printf '%-36s' "$t"; row="| $t |"
        for n in "${names[@]}"; do
            cell=$(awk -F'\t' -v t="$t" '$1 == t { printf "%s %d/%d", $2, $3, $6 }' \
                "$LOGS/$n/results.tsv")
            printf ' %-16s' "${cell:--}"; row="$row ${cell:--} |"
        done
        echo; echo "$row" >>"$md"
    done <"$LOGS/${names[0]}/results.tsv"
}

# --- main -------------------------------------------------------------------------------------

main() {
    local compare=0 setup_only=0 src=${RUNTIME_TOOLS_SRC:-} isolab=$REPO_ROOT/target/release/isolab-runtime
    local runtimes=() rt names=()
    if [ "${1:-}" = --inner ]; then run_inner "$2" "$3"; return; fi
    ONLY='' TIMEOUT=60 LOGS=$CACHE/results MARKDOWN=
    while [ $# -gt 0 ]; do
        case $1 in
            --compare) compare=1 ;;
            --isolab) isolab=${2:?--isolab needs a path}; shift ;;
            --only) ONLY=${2:?--only needs a regex}; shift ;;
            --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
            --logs) LOGS=${2:?--logs needs a directory}; shift ;;
            --markdown) MARKDOWN=${2:?--markdown needs a file}; shift ;;
            --src) src=${2:?--src needs a path}; shift ;;
            --setup-only) setup_only=1 ;;
            -h|--help) usage; return ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) runtimes+=("$1") ;;
        esac
        shift
    done
    if ! [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]]; then
        die "--timeout wants a whole number of seconds, got '$TIMEOUT'"
    fi
    if [ "$setup_only" -eq 1 ]; then setup "$src"; say "suite ready in $CACHE/bin"; return; fi
    if [ "$compare" -eq 1 ]; then
        runtimes=(runc crun)
        if [ -x "$isolab" ]; then runtimes+=("$isolab")
        else say "isolab runtime not built at $isolab; comparing runc and crun only" \
            "(build it, or pass --isolab PATH)"; fi
    elif [ "${#runtimes[@]}" -eq 0 ]; then
        runtimes=("${RUNTIME:-runc}")
    fi
    local resolved=()
    for rt in "${runtimes[@]}"; do
        command -v "$rt" >/dev/null || die "runtime '$rt' not found (give a path or a name on PATH)"
        resolved+=("$(readlink -f "$(command -v "$rt")")")
    done
    mkdir -p "$LOGS" && LOGS=$(cd "$LOGS" && pwd)
    setup "$src"
    for rt in "${resolved[@]}"; do
        run_one "$rt"
        names+=("$(basename "$rt")")
    done
    if [ "${#names[@]}" -gt 1 ]; then compare_table "${names[@]}"; fi
}

main "$@"
