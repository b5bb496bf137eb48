//! `isolab`: run containers and microVMs, and measure them side by side.
//!
//! This file only parses the command line and turns errors into one line on stderr and an exit
//! code; each subcommand lives in its own module.

mod bench;
mod container;
mod image;
mod lab;
mod process_clock;
mod report;
mod vm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// isolab — containers and KVM microVMs, side by side, measured on this machine.
///
/// A container is a host process with a restricted view (namespaces), a budget (cgroups) and
/// its own root filesystem (overlay layers); it shares the host's kernel. A microVM runs its
/// own kernel on virtual hardware that KVM provides. isolab runs the same workloads in both,
/// and in crun, runc, bubblewrap, podman and QEMU where installed, so the articles' claims
/// ("containers start in seconds, VMs in minutes", "near bare-metal", "VMs isolate better")
/// can be checked with numbers from this machine: start with `isolab bench --quick`.
#[derive(Debug, Parser)]
#[command(name = "isolab", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run and manage containers (namespaces + cgroups + an overlay rootfs).
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Manage images: ordered lists of read-only layers.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Run KVM microVMs: a Linux kernel or isolab's own stub guest.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Measure host vs containers vs microVMs vs the peers (crun, runc, bwrap, QEMU), side by
    /// side in one run; write every sample to JSON (and CSV).
    Bench(bench::BenchArgs),
    /// Classroom labs: the ladder of isolation, one rung each, run and checked on this machine.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Turn results files into one HTML page: the articles' claims judged, with charts.
    Report(report::ReportArgs),
    /// Turn a container's changes into a new image (its writable layer becomes a new
    /// read-only layer on top of the image's): the articles' "docker commit ≈ git commit".
    Commit {
        /// Container id or name.
        container: String,
        /// Name of the new image.
        new_image: String,
        /// A note stored with the new layer, like a commit message.
        #[arg(short, long)]
        message: Option<String>,
    },
}

fn main() -> ExitCode {
    process_clock::mark_main_entry();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Container(cmd) => container::run(cmd),
        Command::Image(cmd) => image::run(cmd),
        Command::Vm(cmd) => vm::run(cmd),
        Command::Bench(args) => bench::run(args),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Report(args) => report::run(args),
        Command::Commit {
            container,
            new_image,
            message,
        } => image::run(image::ImageCommand::Commit {
            container,
            new_image,
            message,
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // One line, the whole cause chain, no backtrace: user errors are not crashes.
            eprintln!("isolab: error: {err:#}");
            ExitCode::from(125)
        }
    }
}
