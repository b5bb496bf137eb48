//! The container engine, for real: namespaces, cgroups, overlay, user namespaces.

mod common;

use common::*;
use isolab_container::spawn::ExitStatus;
use isolab_container::{IdMapping, Namespace, RootMode};

#[test]
fn workload_is_pid_1_and_sees_only_its_own_processes() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let spec = sb.spec("echo $$ > /out/pid; ls /proc | grep -c '^[0-9]' > /out/nprocs");
    let out = run_in(&sb, &spec, "pid1");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("pid"), "1");
    // sh, ls and grep (and perhaps the $(...) subshell): nothing from the host.
    let n: u32 = sb.read("nprocs").parse().unwrap();
    assert!(n <= 4, "container saw {n} processes");
}

#[test]
fn hostname_is_isolated() {
    if !can_run() {
        return;
    }
    let host_before = nix::unistd::gethostname().unwrap();
    let sb = Sandbox::new();
    let mut spec = sb.spec("hostname > /out/name; hostname changed-inside; hostname >> /out/name");
    spec.hostname = Some("box1".into());
    // sethostname needs CAP_SYS_ADMIN, which docker's default set (isolab's too) leaves out.
    spec.capabilities = isolab_container::CapSet::all();
    let out = run_in(&sb, &spec, "uts");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("name"), "box1\nchanged-inside");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

#[test]
fn writes_land_in_the_upper_layer_and_mounts_stay_inside() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let spec = sb.spec("echo new > /etc/newfile; rm /etc/passwd; grep -c overlay /proc/self/mountinfo > /out/mounts");
    let out = run_in(&sb, &spec, "cow");
    assert_eq!(out.status, ExitStatus::Exited(0));
    // The image layer is untouched...
    assert!(!busybox_layer().join("etc/newfile").exists());
    assert!(busybox_layer().join("etc/passwd").exists());
    // ...the change is in the container's upper dir, the deletion a whiteout there.
    assert_eq!(
        std::fs::read_to_string(sb.upper().join("etc/newfile")).unwrap(),
        "new\n"
    );
    let whiteout = std::fs::symlink_metadata(sb.upper().join("etc/passwd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        whiteout.file_type().is_char_device(),
        "deletion should be a whiteout"
    );
    assert_eq!(sb.read("mounts"), "1");
    // No mount of this container is visible on the host.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(sb.tmp.path().to_str().unwrap()));
}

#[test]
fn memory_limit_triggers_the_oom_killer_and_exit_137() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let mut spec =
        sb.spec("x=$(head -c 134217728 /dev/zero | tr '\\000' x); echo survived > /out/r");
    spec.resources.memory_limit_bytes = Some(32 << 20);
    let out = run_in(&sb, &spec, "oom");
    assert_eq!(out.status.code(), 137, "outcome: {out:?}");
    assert!(out.oom_killed, "OOM not reported: {out:?}");
    let stats = out.cgroup_stats.unwrap();
    assert!(stats.oom_kills.unwrap_or(0) >= 1);
    assert_eq!(sb.read("r"), "");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    // 60 background sleeps; busybox sh gives up ("can't fork") when pids.max refuses one.
    let mut spec = sb.spec("for i in $(seq 60); do sleep 30 & done; echo all-started > /out/r");
    spec.resources.pids_limit = Some(16);
    let out = run_in(&sb, &spec, "pids");
    let stats = out.cgroup_stats.clone().unwrap();
    assert_ne!(
        sb.read("r"),
        "all-started",
        "the loop should have been stopped: {out:?}"
    );
    assert_ne!(
        out.status,
        ExitStatus::Exited(0),
        "sh reports the failed fork: {out:?}"
    );
    let peak = stats.pids_peak.expect("pids peak");
    assert!(
        (10..=16).contains(&peak),
        "pids peak {peak} with pids.max=16"
    );
}

#[test]
fn cpu_quota_throttles_a_spinner_to_about_half_a_cpu() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    // Four spinners want every CPU there is; the quota allows half of one. On a machine so busy that the
    // spinners never even reach half a CPU the quota is not exercised: try again (3 times).
    let mut last = String::new();
    for attempt in 1..=3 {
        let mut spec = sb
            .spec("for i in 1 2 3 4; do timeout 2 sh -c 'while :; do :; done' & done; wait; true");
        spec.resources.cpu_quota = Some(isolab_cgroups::parse_cpus("0.5").unwrap());
        let out = run_in(&sb, &spec, "cpu");
        let stats = out.cgroup_stats.unwrap();
        let used_us = stats.cpu_usage_us.expect("cpu usage") as f64;
        let share = used_us / out.phases.run_us as f64;
        let throttled = stats.cpu_throttled_periods.unwrap_or(0);
        last = format!(
            "attempt {attempt}: cpu share {share:.2}, throttled in {throttled} of {:?} periods",
            stats.cpu_periods
        );
        eprintln!("{last}");
        // Never above the quota (with slack for accounting at the period edges).
        assert!(share < 0.6, "{last}");
        if throttled > 0 {
            assert!(share > 0.3, "{last}");
            return;
        }
    }
    panic!("the quota was never hit: the machine is too busy to test it ({last})");
}

#[test]
fn userns_root_is_not_host_root() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let secret = sb.out().join("root-owned");
    std::fs::write(&secret, "host data\n").unwrap();
    let script = "id -u > /out/uid; echo pwned >> /out/root-owned; echo $? > /out/rc";

    // Without a user namespace, container root IS host root: the write goes through.
    let out = run_in(&sb, &sb.spec(script), "nouserns");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("uid"), "0");
    assert!(std::fs::read_to_string(&secret).unwrap().contains("pwned"));

    // With one, root inside is uid 100000 outside: the root-owned file is read-only to it.
    std::fs::write(&secret, "host data\n").unwrap();
    std::fs::remove_file(sb.out().join("uid")).unwrap();
    std::fs::remove_file(sb.out().join("rc")).unwrap();
    std::fs::set_permissions(
        sb.out(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let sb2 = Sandbox::new();
    let mut spec = sb.spec(script);
    spec.namespaces.insert(Namespace::User);
    spec.id_mapping = Some(IdMapping::default());
    let out = run_in(&sb2, &spec, "userns");
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(sb.read("uid"), "0", "root inside the user namespace");
    assert_ne!(sb.read("rc"), "0", "the write must fail");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host data\n");
}

#[test]
fn network_namespace_has_only_loopback_up() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let spec = sb.spec("ls /sys/class/net > /out/ifs; cat /sys/class/net/lo/operstate > /out/lo; ip -o addr show lo > /out/addr");
    let out = run_in(&sb, &spec, "netnone");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("ifs"), "lo");
    assert!(
        sb.read("addr").contains("127.0.0.1"),
        "lo not up: {}",
        sb.read("addr")
    );
}

#[test]
fn chroot_mode_runs_too() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let mut spec = sb.spec("echo ok > /out/r");
    spec.root_mode = RootMode::Chroot;
    let out = run_in(&sb, &spec, "chroot");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("r"), "ok");
}

#[test]
fn command_not_found_is_a_clear_error_and_leaves_no_cgroup() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let mut spec = sb.spec("");
    spec.args = vec!["no-such-command".into()];
    let err = try_run_in(&sb, &spec, "enoent").unwrap_err();
    assert_eq!(err.exit_code(), 127);
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-command") && msg.contains("not found"),
        "{msg}"
    );
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem = own
        .lines()
        .find(|l| l.contains(":memory:"))
        .map(|l| l.rsplit(':').next().unwrap().to_string());
    if let Some(path) = mem {
        let dir = std::path::Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .join("isolab");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                assert!(
                    !e.file_name().to_string_lossy().ends_with("-enoent"),
                    "cgroup left behind"
                );
            }
        }
    }
}

#[test]
fn exit_codes_and_signals_propagate() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let out = run_in(&sb, &sb.spec("exit 42"), "exit42");
    assert_eq!(out.status, ExitStatus::Exited(42));
    let out = run_in(&sb, &sb.spec("kill -TERM $$; sleep 1"), "sigterm");
    // PID 1 ignores signals it has no handler for, even from itself: sh exits normally.
    assert_eq!(out.status.code(), 0);
    let start = std::time::Instant::now();
    let out = run_in(
        &sb,
        &sb.spec("trap 'exit 7' TERM; kill -TERM $$; sleep 5"),
        "trap",
    );
    assert_eq!(out.status, ExitStatus::Exited(7));
    assert!(start.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn phase_timings_are_consistent() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let out = run_in(&sb, &sb.spec("true"), "phases");
    let p = out.phases;
    assert!(p.start_to_exec_us > 0 && p.total_us >= p.start_to_exec_us);
    assert!(p.rootfs_us > 0 && p.clone_us > 0);
    assert!(p.start_to_exec_us >= p.rootfs_us);
    eprintln!("{p:?}");
}

#[test]
fn two_bridge_containers_ping_each_other() {
    if !can_run() {
        return;
    }
    use isolab_container::network::{prepare, BridgeConfig};
    use isolab_container::NetworkMode;
    let config = BridgeConfig {
        subnet: "10.231.7.0/24".parse().unwrap(),
        bridge: "isotest0".into(),
        netns: format!("isolab-test-{}", std::process::id()),
    };
    let ip_netns = || {
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout
    };
    let netns_before = ip_netns();

    // The server: shows its interfaces, then stays up for a while.
    let server_sb = Sandbox::new();
    let ready = server_sb.out().join("ready");
    let server_plan = prepare(&config, &unique_id("srv")).unwrap();
    let server_addr = server_plan.address();
    let mut server = server_sb.spec(
        "ls /sys/class/net > /out/ifs; ip -o -4 addr show eth0 > /out/addr; touch /out/ready; sleep 2",
    );
    server.network = NetworkMode::Bridge;
    let server_thread = std::thread::spawn(move || {
        let cgroups = isolab_cgroups::CgroupRoot::detect().unwrap();
        let mut ctx = isolab_container::spawn::RunContext::new(unique_id("srv"));
        ctx.cgroups = Some(&cgroups);
        ctx.overlay = Some(server_sb.overlay());
        ctx.network = Some(server_plan);
        (
            isolab_container::spawn::run(&server, ctx).unwrap(),
            server_sb,
        )
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The client pings the server across the bridge.
    let client_sb = Sandbox::new();
    let mut client = client_sb.spec(&format!(
        "ping -c 2 -W 2 {server_addr} > /out/ping; echo $? > /out/rc"
    ));
    client.network = NetworkMode::Bridge;
    let cgroups = isolab_cgroups::CgroupRoot::detect().unwrap();
    let mut ctx = isolab_container::spawn::RunContext::new(unique_id("cli"));
    ctx.cgroups = Some(&cgroups);
    ctx.overlay = Some(client_sb.overlay());
    ctx.network = Some(prepare(&config, &unique_id("cli")).unwrap());
    let out = isolab_container::spawn::run(&client, ctx).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    let (server_out, server_sb) = server_thread.join().unwrap();

    assert_eq!(server_out.status, ExitStatus::Exited(0));
    assert_eq!(server_sb.read("ifs"), "eth0\nlo", "only lo and eth0");
    assert!(server_sb.read("addr").contains(&server_addr.to_string()));
    assert_eq!(
        client_sb.read("rc"),
        "0",
        "ping failed: {}",
        client_sb.read("ping")
    );
    // Leases, the bridge namespace and the veths are gone once both have exited.
    let leases = isolab_container::network::lease_dir(&config.netns);
    assert_eq!(
        std::fs::read_dir(&leases).map(|d| d.count()).unwrap_or(0),
        0
    );
    assert_eq!(netns_before, ip_netns());
}

/// On cgroup v2 the child is created directly inside its cgroup (clone3 CLONE_INTO_CGROUP).
/// Exercised for real on the host's cgroup2 mount (on a hybrid host, the nearly empty one).
#[test]
fn cgroup_v2_children_are_born_in_their_cgroup() {
    if !can_run() {
        return;
    }
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_string));
    let Some(mount) = mount else {
        eprintln!("skipped: no cgroup2 mount on this host");
        return;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap_or_else(|| "/".into());
    let root = isolab_cgroups::CgroupRoot::unified_at(std::path::Path::new(&mount), &own).unwrap();
    let sb = Sandbox::new();
    let mut spec = sb.spec("cat /proc/self/cgroup > /out/cg");
    // Without a cgroup namespace the workload sees its real path.
    spec.namespaces.remove(Namespace::Cgroup);
    let id = unique_id("v2");
    let mut ctx = isolab_container::spawn::RunContext::new(id.clone());
    ctx.cgroups = Some(&root);
    ctx.overlay = Some(sb.overlay());
    let out = isolab_container::spawn::run(&spec, ctx).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    let line = sb
        .read("cg")
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.ends_with(&format!("/isolab/{id}")),
        "workload was in {line:?}"
    );
    assert!(!std::path::Path::new(&mount)
        .join(own.trim_start_matches('/'))
        .join("isolab")
        .join(&id)
        .exists());
}

/// `--rm` containers keep their writable layer on a tmpfs inside their own mount namespace:
/// writes work, the host directory stays empty, and the pages count against the memory limit.
#[test]
fn in_memory_writable_layer_leaves_nothing_on_disk() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let shared = sb.tmp.path().join("mnt");
    std::fs::create_dir(&shared).unwrap();
    let run = |script: &str, memory: Option<u64>| {
        let mut spec = sb.spec(script);
        spec.resources.memory_limit_bytes = memory;
        let cgroups = isolab_cgroups::CgroupRoot::detect().unwrap();
        let mut ctx = isolab_container::spawn::RunContext::new(unique_id("mem"));
        ctx.cgroups = Some(&cgroups);
        ctx.overlay = Some(isolab_container::rootfs::OverlayDirs::in_memory(&shared));
        isolab_container::spawn::run(&spec, ctx).unwrap()
    };
    let out = run("echo data > /etc/new && cat /etc/new > /out/r", None);
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("r"), "data");
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "host dir must stay empty"
    );
    // 64 MiB written into the layer with a 32 MiB limit: the tmpfs pages are the container's.
    let out = run(
        "head -c 67108864 /dev/zero > /big; echo wrote > /out/big",
        Some(32 << 20),
    );
    assert!(out.oom_killed || sb.read("big").is_empty(), "{out:?}");
}

/// Root inside keeps docker's 14 capabilities by default: no CAP_SYS_ADMIN, so it cannot even
/// set the hostname of its own UTS namespace; `CapSet::all()` (`--privileged`) keeps everything.
#[test]
fn default_capabilities_are_dockers_fourteen() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let script =
        "grep CapBnd /proc/self/status > /out/bnd; hostname other 2>/dev/null; echo $? > /out/rc";
    let out = run_in(&sb, &sb.spec(script), "caps");
    assert_eq!(out.status, ExitStatus::Exited(0));
    let mask = u64::from_str_radix(sb.read("bnd").split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask, isolab_container::CapSet::docker_default().0);
    assert_ne!(
        sb.read("rc"),
        "0",
        "sethostname must be refused without CAP_SYS_ADMIN"
    );

    let mut spec = sb.spec(script);
    spec.capabilities = isolab_container::CapSet::all();
    let out = run_in(&sb, &spec, "privileged");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("rc"), "0");
}
