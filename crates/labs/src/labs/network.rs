//! Lab 5: the network namespace — a container's own network stack, empty but for loopback,
//! and isolab's bridge joining two of them.

use crate::{Lab, LabError, Session};
use std::time::Duration;

pub const LAB: Lab = Lab {
    number: 5,
    name: "network",
    summary: "loopback only by default; two containers on isolab's bridge reach each other",
    claims: &["C7"],
    needs_root: true,
    background: "\
A network namespace is a whole network stack: interfaces, addresses, routes, firewall rules,
sockets. A new one has only a loopback interface (down until someone brings it up), so a
default container can reach nothing and nothing can reach it. To connect containers, a veth
pair — a virtual cable — is created with one end in the container (eth0) and the other
plugged into a bridge, a virtual switch. isolab keeps its bridge in its own network namespace
(`ip netns list` shows `isolab` while bridged containers run), so the host's interfaces are
never touched.

What to look for: the default container lists only `lo` and none of the host's interfaces;
two containers with --net bridge get addresses in one subnet and one pings the other.",
    run,
};

fn run(s: &mut Session) -> Result<(), LabError> {
    let host = s.host("ls", &["/sys/class/net"])?;
    let host_ifaces: Vec<String> = host.stdout.split_whitespace().map(String::from).collect();
    let inside = s.isolab(&["container", "run", "--rm", "--", "ip", "-o", "link"])?;
    let names: Vec<String> = inside
        .stdout
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect();
    s.check(
        "loopback-only",
        inside.exit_code == Some(0) && names == ["lo"],
        format!(
            "inside: {}; host: {}",
            names.join(" "),
            host_ifaces.join(" ")
        ),
    );

    s.say("Two containers on isolab's bridge: A waits, B pings A.");
    let shared = s.shared_volume();
    let a = s.isolab_background(&[
        "container",
        "run",
        "--rm",
        "--net",
        "bridge",
        "-v",
        &shared,
        "--",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; while [ ! -e /lab/stop ]; do sleep 0.1; done",
    ])?;
    s.wait_until(Duration::from_secs(20), || {
        s.background_stdout(a).contains("inet ")
    })?;
    let printed = s.background_stdout(a);
    s.say(&format!("A printed: {}", printed.trim()));
    let Some(address) = inet_address(&printed) else {
        s.check(
            "bridge-address",
            false,
            format!("A printed no IPv4 address: {printed:?}"),
        );
        return Ok(());
    };
    let ping = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--net",
        "bridge",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "3",
        &address,
    ])?;
    s.check(
        "bridge-reaches-neighbour",
        ping.exit_code == Some(0) && ping.stdout.contains("1 packets received"),
        format!(
            "B pinged A at {address}: {}",
            ping.stdout
                .lines()
                .find(|l| l.contains("packets"))
                .unwrap_or("no reply")
                .trim()
        ),
    );
    std::fs::write(s.shared().join("stop"), b"").map_err(LabError::prepare(s.shared()))?;
    s.wait_background(a)?;
    Ok(())
}

/// `10.77.0.2` from `2: eth0    inet 10.77.0.2/24 brd ...`.
fn inet_address(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "inet")?;
    Some(words.next()?.split('/').next()?.to_string())
}
