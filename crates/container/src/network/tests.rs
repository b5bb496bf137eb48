//! Real tests: real namespaces, veth pairs and a bridge, as root. Every "container" here is a
//! forked child that unshares its own network namespace, so traffic only ever flows between
//! namespaces the test created; the host's root namespace is only read, never changed.

use super::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("skipping: bridge networking needs root");
        return false;
    }
    true
}

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A config of our own per test, so parallel tests never share a namespace.
fn test_config() -> BridgeConfig {
    let tag = NEXT_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    BridgeConfig {
        subnet: "10.78.0.0/24".parse().unwrap(),
        bridge: format!("iltb{tag}"),
        netns: format!("isolab-test-{}-{tag}", std::process::id()),
    }
}

/// `ip netns list`, without the namespaces of *other* tests of this process running in parallel.
fn netns_list(own: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(out.status.success());
    let siblings = format!("isolab-test-{}-", std::process::id());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            let name = l.split_whitespace().next().unwrap_or("");
            name == own || !name.starts_with(&siblings)
        })
        .map(str::to_string)
        .collect()
}

fn netns_listed(name: &str) -> bool {
    netns_list(name)
        .iter()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn link_names(prefix: &[&str]) -> Vec<String> {
    let out = Command::new(prefix[0])
        .args(&prefix[1..])
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{prefix:?} ip link failed: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

fn lease_files(netns: &str) -> Vec<String> {
    match fs::read_dir(super::lease_dir(netns)) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A forked child in its own network namespace, running `argv` after network setup.
struct TestContainer {
    pid: i32,
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        // SAFETY: kill/waitpid on our own child's pid; it is reaped exactly once, here.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        let mut status = 0;
        // SAFETY: as above.
        unsafe {
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

enum Setup<'a> {
    Bridge(&'a BridgePlan),
    ConfigureWithoutAttach(ChildNet),
    LoopbackOnly,
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the live 2-element array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0);
    fds
}

fn raw_read(fd: libc::c_int, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is live and writable for its length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn raw_write(fd: libc::c_int, buf: &[u8]) -> isize {
    // SAFETY: `buf` is live and readable for its length.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn close(fd: libc::c_int) {
    // SAFETY: closes a descriptor this test opened and closes once.
    unsafe { libc::close(fd) };
}

fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit ends the forked child without running the parent's atexit/Drop state.
    unsafe { libc::_exit(code) }
}

/// The forked child: only raw system calls on data prepared before fork, like a runtime's
/// child between clone and exec.
fn child_after_fork(
    to_parent: libc::c_int,
    from_parent: libc::c_int,
    child_net: Option<ChildNet>,
    prog: &CString,
    argv: &[*const libc::c_char],
) -> ! {
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        exit_now(90);
    }
    raw_write(to_parent, b"r");
    let mut go = [0u8; 1];
    if raw_read(from_parent, &mut go) != 1 {
        exit_now(91);
    }
    let result = match child_net {
        Some(net) => configure_child(&net),
        None => loopback_up(),
    };
    if let Err(e) = result {
        raw_write(to_parent, &e.to_bytes());
        exit_now(92);
    }
    // SAFETY: `prog` is NUL-terminated and `argv` a null-terminated array of live C strings.
    unsafe { libc::execv(prog.as_ptr(), argv.as_ptr()) };
    exit_now(127)
}

/// Forks a child that unshares a network namespace, waits for the parent to attach it, runs the
/// in-child configuration, then execs `argv`. Returns the child, the in-child error if any, and
/// how long `attach` took.
fn start(
    setup: Setup<'_>,
    argv: &[&str],
) -> (TestContainer, Option<ChildNetError>, std::time::Duration) {
    let prog = CString::new(find_tool(argv[0]).unwrap().as_os_str().as_bytes()).unwrap();
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let child_net = match &setup {
        Setup::Bridge(plan) => Some(*plan.child()),
        Setup::ConfigureWithoutAttach(net) => Some(*net),
        Setup::LoopbackOnly => None,
    };
    let to_parent = pipe();
    let to_child = pipe();
    // SAFETY: the child only makes raw system calls (no allocation, no locks) until execv.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        child_after_fork(to_parent[1], to_child[0], child_net, &prog, &arg_ptrs);
    }
    let container = TestContainer { pid };
    close(to_parent[1]);
    close(to_child[0]);
    let mut byte = [0u8; 1];
    assert_eq!(
        raw_read(to_parent[0], &mut byte),
        1,
        "child did not get its network namespace"
    );
    let began = Instant::now();
    if let Setup::Bridge(plan) = setup {
        plan.attach(pid).unwrap();
    }
    let attach_time = began.elapsed();
    raw_write(to_child[1], b"g");
    close(to_child[1]);
    let mut err = [0u8; 5];
    let mut got = 0usize;
    while got < err.len() {
        let n = raw_read(to_parent[0], &mut err[got..]);
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    close(to_parent[0]);
    let child_err = if got == 5 {
        Some(ChildNetError::from_bytes(err).expect("valid error bytes"))
    } else {
        None
    };
    (container, child_err, attach_time)
}

fn in_netns(pid: i32, cmd: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "--"])
        .args(cmd)
        .output()
        .unwrap()
}

#[test]
fn subnet_parsing_rejects_bad_input_clearly() {
    let ok: Subnet = "10.77.0.0/16".parse().unwrap();
    assert_eq!(ok.gateway(), Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(ok.netmask(), Ipv4Addr::new(255, 255, 0, 0));
    assert_eq!(ok.broadcast(), Ipv4Addr::new(10, 77, 255, 255));
    assert_eq!(ok.to_string(), "10.77.0.0/16");
    let small: Subnet = "192.168.5.0/30".parse().unwrap();
    assert_eq!(
        small.hosts().collect::<Vec<_>>(),
        vec![Ipv4Addr::new(192, 168, 5, 2)]
    );
    for (input, needle) in [
        ("10.77.0.0", "missing `/prefix-length`"),
        ("10.77.0/16", "not a dotted-quad"),
        ("10.77.0.0/abc", "not a number"),
        ("10.77.0.0/31", "outside 8..=30"),
        ("10.77.0.0/4", "outside 8..=30"),
        ("10.77.0.5/24", "did you mean 10.77.0.0/24"),
    ] {
        let err = input.parse::<Subnet>().unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, NetworkError::InvalidSubnet { .. }),
            "{input}: {msg}"
        );
        assert!(msg.contains(needle), "{input}: {msg}");
        assert!(msg.contains(input), "{input}: {msg}");
        assert!(!msg.contains('\n'));
    }
}

#[test]
fn bridge_config_rejects_bad_names() {
    assert!(BridgeConfig::default().validate().is_ok());
    let long = BridgeConfig {
        bridge: "a-very-long-bridge-name".into(),
        ..BridgeConfig::default()
    };
    assert!(long
        .validate()
        .unwrap_err()
        .to_string()
        .contains("15 bytes"));
    let slash = BridgeConfig {
        netns: "../etc".into(),
        ..BridgeConfig::default()
    };
    assert!(matches!(
        slash.validate(),
        Err(NetworkError::InvalidName {
            what: "network namespace name",
            ..
        })
    ));
    let err = prepare(&BridgeConfig::default(), "bad\nid").unwrap_err();
    assert!(err.to_string().contains("container id"), "{err}");
}

#[test]
fn child_error_roundtrips_through_bytes() {
    let e = ChildNetError {
        step: ChildNetStep::DefaultRoute,
        errno: libc::ENETUNREACH,
    };
    assert_eq!(ChildNetError::from_bytes(e.to_bytes()), Some(e));
    assert_eq!(ChildNetError::from_bytes([0, 0, 0, 0, 0]), None);
    assert!(e.to_string().contains("default route"));
}

#[test]
fn two_containers_on_the_bridge_ping_each_other() {
    if !is_root() {
        return;
    }
    if find_tool("ping").is_none() || find_tool("nsenter").is_none() {
        eprintln!("skipping: needs ping and nsenter");
        return;
    }
    let config = test_config();
    let netns_before = netns_list(&config.netns);

    let plan_a = prepare(&config, "ctr-a").unwrap();
    let plan_b = prepare(&config, "ctr-b").unwrap();
    assert_ne!(plan_a.address(), plan_b.address());
    assert!(config.subnet.contains(plan_a.address()));
    assert_eq!(plan_a.gateway(), config.subnet.gateway());
    assert!(plan_a.host_veth().len() <= 15);
    assert!(netns_listed(&config.netns));

    let (a, err_a, attach_a) = start(Setup::Bridge(&plan_a), &["sleep", "30"]);
    assert_eq!(err_a, None);
    let (b, err_b, attach_b) = start(Setup::Bridge(&plan_b), &["sleep", "30"]);
    assert_eq!(err_b, None);
    eprintln!(
        "attach (one RTM_NEWLINK veth request): {} us, {} us",
        attach_a.as_micros(),
        attach_b.as_micros()
    );

    // Each container sees exactly lo and eth0, with its leased address and a default route.
    for (ctr, plan) in [(&a, &plan_a), (&b, &plan_b)] {
        let mut names = link_names(&["nsenter", "-t", &ctr.pid.to_string(), "-n", "--", "ip"]);
        names.sort();
        assert_eq!(names, vec!["eth0".to_string(), "lo".to_string()]);
        let addrs =
            String::from_utf8(in_netns(ctr.pid, &["ip", "-o", "-4", "addr", "show"]).stdout)
                .unwrap();
        let expected = format!("{}/{}", plan.address(), plan.prefix_len());
        assert!(
            addrs
                .lines()
                .any(|l| l.contains(" eth0 ") && l.contains(&expected)),
            "{addrs}"
        );
        assert!(addrs
            .lines()
            .any(|l| l.contains(" lo ") && l.contains("127.0.0.1/8")));
        assert_eq!(addrs.lines().count(), 2, "{addrs}");
        let routes =
            String::from_utf8(in_netns(ctr.pid, &["ip", "-4", "route", "show"]).stdout).unwrap();
        assert!(
            routes.contains(&format!("default via {} dev eth0", plan.gateway())),
            "{routes}"
        );
    }

    // Both directions, plus the bridge's own address (the gateway).
    for (from, to) in [
        (a.pid, plan_b.address()),
        (b.pid, plan_a.address()),
        (a.pid, plan_a.gateway()),
    ] {
        let out = in_netns(from, &["ping", "-c1", "-W2", &to.to_string()]);
        assert!(out.status.success(), "ping {to} from {from}: {out:?}");
    }

    // The bridge and its ports live in isolab's namespace; the host's root namespace has none.
    let in_isolab = link_names(&["ip", "-n", &config.netns]);
    let root = link_names(&["ip"]);
    for name in [
        config.bridge.as_str(),
        plan_a.host_veth(),
        plan_b.host_veth(),
    ] {
        assert!(
            in_isolab.iter().any(|n| n == name),
            "{name} in {in_isolab:?}"
        );
        assert!(
            !root.iter().any(|n| n == name),
            "{name} leaked into the root namespace"
        );
    }

    drop(a);
    drop(b);
    plan_a.release().unwrap();
    assert!(netns_listed(&config.netns), "still in use by b");
    drop(plan_b);
    assert_eq!(lease_files(&config.netns), Vec::<String>::new());
    assert_eq!(netns_list(&config.netns), netns_before);
    assert!(!netns::path(&config.netns).exists());
}

#[test]
fn loopback_only_namespace_for_net_none() {
    if !is_root() {
        return;
    }
    let (ctr, err, _) = start(Setup::LoopbackOnly, &["sleep", "30"]);
    assert_eq!(err, None);
    assert_eq!(
        link_names(&["nsenter", "-t", &ctr.pid.to_string(), "-n", "--", "ip"]),
        vec!["lo".to_string()]
    );
    let out = in_netns(ctr.pid, &["ping", "-c1", "-W2", "127.0.0.1"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn configure_without_attach_reports_step_and_errno() {
    if !is_root() {
        return;
    }
    let net = ChildNet::new(
        CONTAINER_IFNAME,
        Ipv4Addr::new(10, 78, 0, 2),
        Ipv4Addr::new(255, 255, 255, 0),
        Ipv4Addr::new(10, 78, 0, 1),
    );
    let (_ctr, err, _) = start(Setup::ConfigureWithoutAttach(net), &["sleep", "30"]);
    assert_eq!(
        err,
        Some(ChildNetError {
            step: ChildNetStep::SetAddress,
            errno: libc::ENODEV
        })
    );
}

#[test]
fn stale_leases_and_namespace_of_a_killed_isolab_are_reclaimed() {
    if !is_root() {
        return;
    }
    let config = test_config();
    let netns_before = netns_list(&config.netns);

    // Simulate `kill -9` of isolab: the plan is never dropped, and its lease names a process
    // that no longer exists (our pid with a start time that is not ours).
    let crashed = prepare(&config, "crashed").unwrap();
    let crashed_addr = crashed.address();
    fs::write(
        super::lease_dir(&config.netns).join(crashed_addr.to_string()),
        format!("crashed\n{}\n1\n", std::process::id()),
    )
    .unwrap();
    std::mem::forget(crashed);
    assert!(netns_listed(&config.netns));

    let fresh = prepare(&config, "fresh").unwrap();
    assert_eq!(
        lease_files(&config.netns),
        vec![fresh.address().to_string()],
        "the stale lease of {crashed_addr} was reclaimed"
    );
    let names = link_names(&["ip", "-n", &config.netns]);
    assert!(!names.iter().any(|n| n.starts_with("veth")), "{names:?}");
    drop(fresh);
    assert_eq!(lease_files(&config.netns), Vec::<String>::new());
    assert_eq!(netns_list(&config.netns), netns_before);
}

#[test]
fn concurrent_prepares_get_distinct_addresses_and_clean_up() {
    if !is_root() {
        return;
    }
    let config = test_config();
    let netns_before = netns_list(&config.netns);
    let plans: Vec<BridgePlan> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let config = &config;
                s.spawn(move || prepare(config, &format!("c{i}")).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: BTreeSet<Ipv4Addr> = plans.iter().map(|p| p.address()).collect();
    assert_eq!(addrs.len(), 8);
    assert_eq!(lease_files(&config.netns).len(), 8);
    drop(plans);
    assert_eq!(lease_files(&config.netns), Vec::<String>::new());
    assert_eq!(netns_list(&config.netns), netns_before);
}

#[test]
fn repeated_runs_leave_nothing_behind() {
    if !is_root() {
        return;
    }
    let config = test_config();
    let netns_before = netns_list(&config.netns);
    // Cold: every run is the only container, so it creates and deletes isolab's namespace.
    // Warm: an anchor lease keeps the namespace, as when containers overlap.
    for phase in ["cold", "warm"] {
        let anchor = (phase == "warm").then(|| prepare(&config, "anchor").unwrap());
        let (mut prepare_us, mut attach_us, mut release_us) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20 {
            let began = Instant::now();
            let plan = prepare(&config, &format!("r{i}")).unwrap();
            prepare_us.push(began.elapsed().as_micros());
            let (ctr, err, attach) = start(Setup::Bridge(&plan), &["true"]);
            assert_eq!(err, None);
            attach_us.push(attach.as_micros());
            drop(ctr);
            let began = Instant::now();
            plan.release().unwrap();
            release_us.push(began.elapsed().as_micros());
        }
        for v in [&mut prepare_us, &mut attach_us, &mut release_us] {
            v.sort();
        }
        eprintln!(
            "{phase}, 20 runs, median (min-max) us: prepare {} ({}-{}), attach {} ({}-{}), release {} ({}-{})",
            prepare_us[10], prepare_us[0], prepare_us[19],
            attach_us[10], attach_us[0], attach_us[19],
            release_us[10], release_us[0], release_us[19],
        );
        drop(anchor);
    }
    assert_eq!(lease_files(&config.netns), Vec::<String>::new());
    assert_eq!(netns_list(&config.netns), netns_before);
}
