//! `isolab`: run containers and microVMs, and measure them side by side.
//!
//! This file only parses the command line and turns errors into one line on stderr and an exit
//! code; each subcommand lives in its own module.

mod container;
mod image;
mod vm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// isolab — containers and KVM microVMs, side by side, measured on this machine.
#[derive(Debug, Parser)]
#[command(name = "isolab", version, about, long_about = None, propagate_version = true)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Container(cmd) => container::run(cmd),
        Command::Image(cmd) => image::run(cmd),
        Command::Vm(cmd) => vm::run(cmd),
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
