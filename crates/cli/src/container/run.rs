//! `isolab container run`: one container's life from the command line, top to bottom.
//!
//! Everything the user asked for is checked before anything exists on the host (a bad bundle,
//! a missing image or a rootless request for cgroups fails with nothing to clean up); then the
//! container's record and writable-layer directories are made; then the spawn path runs it and
//! the record is updated with how it ended. A `--rm` container's record is removed however
//! this returns.

use super::{open_store, spec_from_args, RunArgs};
use anyhow::{bail, Context, Result};
use isolab_cgroups::{CgroupRoot, Resources};
use isolab_container::image::{ContainerDirs, Image, Store, WritableLayer};
use isolab_container::rootfs::OverlayDirs;
use isolab_container::spawn::{self, RunContext, RunOutcome};
use isolab_container::stdio::StdioMode;
use isolab_container::{ContainerSpec, IdMapping, Namespace, NetworkMode, RootfsSource};

/// `isolab container run`: validate everything, then create the record, then run; each step
/// below is one of those, in that order.
pub(super) fn run_container(args: RunArgs) -> Result<u8> {
    let rootless = !nix::unistd::Uid::effective().is_root();
    if rootless && !args.userns && !args.namespaces.contains(Namespace::User) {
        bail!("isolab container run needs root (namespaces, cgroups and mounts): run it with sudo, or rootless with --userns");
    }
    // 1. Validate everything before creating anything.
    let source = run_source(&args)?;
    let store = open_store()?;
    let (mut spec, image) = spec_and_image(&args, &store, source)?;
    if rootless {
        confine_rootless(&mut spec)?;
    }
    let cgroups = if spec.use_cgroup {
        Some(CgroupRoot::detect()?)
    } else {
        None
    };

    // 2. Create the container's record and the directories its writable layer needs.
    let remove_on_exit = args.rm;
    let layer = writable_layer(&spec.rootfs, remove_on_exit);
    let dirs = create_record(&store, &args, image.as_ref(), &spec, layer)?;
    let cleanup = Cleanup {
        store: &store,
        dirs: &dirs,
        remove: remove_on_exit,
    };
    if spec.hostname.is_none() && spec.namespaces.contains(Namespace::Uts) {
        spec.hostname = Some(dirs.id.clone());
    }
    let network = match spec.network {
        NetworkMode::Bridge => Some(isolab_container::network::prepare(
            &isolab_container::network::BridgeConfig::default(),
            &dirs.id,
        )?),
        _ => None,
    };
    let ctx = RunContext {
        id: dirs.id.clone(),
        cgroups: cgroups.as_ref(),
        overlay: overlay_dirs(layer, &dirs),
        stdio: stdio_mode(&spec, remove_on_exit, &dirs)?,
        forward_signals: true,
        network,
        seccomp: None,
        on_start: Some(Box::new(|pid| {
            let _ = if remove_on_exit {
                store.record_ephemeral_start(&dirs, Some(&spec), pid)
            } else {
                store.mark_started(&dirs.id, pid)
            };
        })),
        before_start: None,
        preserve_fds: 0,
    };

    // 3. Run it.
    let engine_start = crate::process_clock::since_main();
    let result = spawn::run(&spec, ctx);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let code = e.exit_code();
            if !remove_on_exit {
                let _ = store.mark_exited(&dirs.id, code as i32);
            }
            drop(cleanup);
            eprintln!("isolab: error: {e}");
            return Ok(code);
        }
    };
    if !remove_on_exit {
        store.mark_exited(&dirs.id, outcome.status.code())?;
    }
    drop(cleanup);
    report(&args, &outcome, engine_start)?;
    Ok(outcome.status.code().clamp(0, 255) as u8)
}

/// What the container's root filesystem comes from.
enum RunSource {
    /// An OCI bundle: its config.json is the whole spec.
    Bundle(Box<ContainerSpec>),
    /// `--rootfs DIR`, used as it is.
    Rootfs(RootfsSource),
    /// An image from the store (`--image`, default `busybox`).
    Image,
}

/// `--bundle`, `--rootfs` or an image; a bundle is read and converted here, so a bad one fails
/// before anything is created. Fields a bundle sets that isolab does not apply are named.
fn run_source(args: &RunArgs) -> Result<RunSource> {
    match (&args.bundle, &args.rootfs) {
        (Some(dir), _) => {
            let bundle = isolab_container::oci::load(dir)?;
            if !bundle.ignored.is_empty() {
                eprintln!(
                    "isolab: warning: {}/config.json: not applied by isolab: {}",
                    dir.display(),
                    bundle.ignored.join(", ")
                );
            }
            Ok(RunSource::Bundle(Box::new(bundle.spec)))
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!("--rootfs {}: not a directory", dir.display());
            }
            Ok(RunSource::Rootfs(RootfsSource::Dir(std::fs::canonicalize(
                dir,
            )?)))
        }
        (None, None) => Ok(RunSource::Image),
    }
}

/// The spec to run, and the image it runs on (none for a bundle or a plain rootfs). The
/// default image is built from the host's busybox the first time it is needed.
fn spec_and_image(
    args: &RunArgs,
    store: &Store,
    source: RunSource,
) -> Result<(ContainerSpec, Option<Image>)> {
    match source {
        RunSource::Bundle(spec) => Ok((*spec, None)),
        RunSource::Rootfs(rootfs) => Ok((spec_from_args(args, rootfs)?, None)),
        RunSource::Image => {
            let image = if args.image == "busybox" {
                store.ensure_default_image()?
            } else {
                store.image(&args.image)?
            };
            let spec = spec_from_args(args, RootfsSource::Layers(image.layers.clone()))?;
            Ok((spec, Some(image)))
        }
    }
}

/// Rootless, container root is the caller; cgroups and the bridge belong to the host's root,
/// so asking for them is an error rather than a silent downgrade.
fn confine_rootless(spec: &mut ContainerSpec) -> Result<()> {
    if spec.resources != Resources::default() {
        bail!("resource limits need cgroups, which only root can create here: drop --memory/--cpus/--pids-limit/... or run with sudo");
    }
    if spec.network == NetworkMode::Bridge {
        bail!("--net bridge needs root (isolab's bridge lives in a namespace root owns): use --net none or host, or run with sudo");
    }
    spec.use_cgroup = false;
    spec.id_mapping = Some(IdMapping {
        host_base: nix::unistd::Uid::effective().as_raw(),
        count: 1,
    });
    Ok(())
}

/// A container removed on exit keeps its writable layer in memory (nothing to write to disk
/// or delete); a kept one keeps it on disk for `commit` and inspection; a plain rootfs has none.
fn writable_layer(rootfs: &RootfsSource, remove_on_exit: bool) -> WritableLayer {
    match (rootfs, remove_on_exit) {
        (RootfsSource::Layers(_), true) => WritableLayer::InMemory,
        (RootfsSource::Layers(_), false) => WritableLayer::OnDisk,
        (RootfsSource::Dir(_), _) => WritableLayer::None,
    }
}

/// The container's record: one file for a `--rm` container, a directory for a kept one.
fn create_record(
    store: &Store,
    args: &RunArgs,
    image: Option<&Image>,
    spec: &ContainerSpec,
    layer: WritableLayer,
) -> Result<ContainerDirs> {
    let image_name = image.map(|i| i.name.as_str()).unwrap_or("-");
    let name = args.name.as_deref();
    Ok(if args.rm {
        let layer_ids = image.map(|i| i.layer_ids.as_slice()).unwrap_or(&[]);
        store.ephemeral_container(image_name, name, layer_ids)?
    } else {
        store.create_container_for_run(image_name, name, Some(spec), layer)?
    })
}

/// Where the overlay's upper and work directories live, if there is an overlay.
fn overlay_dirs(layer: WritableLayer, dirs: &ContainerDirs) -> Option<OverlayDirs> {
    match layer {
        WritableLayer::InMemory => Some(OverlayDirs::in_memory(&dirs.rootfs)),
        WritableLayer::OnDisk => Some(OverlayDirs::on_disk(
            dirs.upper.clone(),
            dirs.work.clone(),
            dirs.rootfs.clone(),
        )),
        WritableLayer::None => None,
    }
}

/// `-t` gets a terminal (and needs one on stdin); a `--rm` container shares isolab's stdio; a
/// kept one writes its output to its log.
fn stdio_mode(
    spec: &ContainerSpec,
    remove_on_exit: bool,
    dirs: &ContainerDirs,
) -> Result<StdioMode> {
    Ok(if spec.tty {
        if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
            bail!("-t needs a terminal on stdin; drop -t when piping input");
        }
        StdioMode::Tty
    } else if remove_on_exit {
        StdioMode::Inherit
    } else {
        StdioMode::Log(dirs.log.clone())
    })
}

/// Removes a `--rm` container's record however `run_container` returns.
struct Cleanup<'a> {
    store: &'a Store,
    dirs: &'a ContainerDirs,
    remove: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.remove {
            let _ = self.store.remove_ephemeral(self.dirs);
        }
    }
}

fn report(args: &RunArgs, o: &RunOutcome, engine_start: std::time::Duration) -> Result<()> {
    if o.oom_killed {
        eprintln!(
            "isolab: the container was killed by the OOM killer at its memory limit ({}).",
            args.memory
                .map(|m| format!("{} MiB", m >> 20))
                .unwrap_or_else(|| "no limit set".into())
        );
    }
    if args.timings {
        let p = &o.phases;
        eprintln!(
            "isolab: start {} µs (cgroup {} µs, clone {} µs, network {} µs, rootfs {} µs, exec setup {} µs); ran {} µs; cleanup {} µs; total {} µs",
            p.start_to_exec_us, p.cgroup_us, p.clone_us, p.network_us, p.rootfs_us, p.exec_setup_us, p.run_us, p.cleanup_us, p.total_us
        );
        let us = |d: std::time::Duration| d.as_micros() as u64;
        let main_to_here = us(crate::process_clock::since_main());
        let before_engine = us(engine_start);
        eprintln!(
            "isolab: whole process: exec→main {} µs (CPU time: loading, runtime start); main→engine {} µs (arguments, store, cgroup detection, seccomp, record); engine {} µs; after the engine {} µs (record removal); exec→now ≈ {} µs",
            us(crate::process_clock::before_main()),
            before_engine,
            p.total_us,
            main_to_here.saturating_sub(before_engine + p.total_us),
            us(crate::process_clock::before_main()) + main_to_here,
        );
    }
    if args.stats {
        match &o.cgroup_stats {
            Some(s) => eprintln!("isolab: {}", serde_json::to_string(s)?),
            None => eprintln!("isolab: no cgroup stats (--no-cgroup)"),
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(o)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
