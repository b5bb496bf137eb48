//! runc's command line: global flags before the command, then the command and its flags.
//!
//! Callers (podman's conmon, containerd's shim, runtime-tools) pass exactly these spellings,
//! so they are kept even where isolab has a better name elsewhere.

use crate::error::RuntimeError;
use crate::log::{Log, LogFormat};
use crate::state::Root;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// isolab-runtime — isolab's containers behind the OCI runtime command line (runc's), so
/// podman, containerd and the OCI validation suite can drive them.
///
/// Lifecycle: `create` builds the container and leaves its process blocked before exec;
/// `start` lets it run; `kill` signals it; `delete` removes what is left. `run` does create +
/// start (+ wait + delete without --detach). Use it from podman with
/// `podman --runtime /path/to/isolab-runtime --cgroup-manager cgroupfs run ...`.
#[derive(Debug, Parser)]
#[command(name = "isolab-runtime", disable_version_flag = true)]
pub struct Cli {
    /// Directory for the containers' state (each command is a fresh process; this is what
    /// they share).
    #[arg(long, global = false, default_value = crate::state::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Append errors and warnings to this file too.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of --log lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Manage cgroups through systemd (not supported: refused with an explanation).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility; isolab-runtime has no debug output.
    #[arg(long)]
    pub debug: bool,
    /// Accepted for compatibility ("auto", "true", "false"): rootless mode is chosen from the
    /// caller's uid.
    #[arg(long)]
    pub rootless: Option<String>,
    /// Print the version and the runtime-spec version, then exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits before exec until `start`.
    Create(CreateArgs),
    /// Let a created container's process run its program.
    Start { id: String },
    /// Print the container's runtime-spec state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init process, or with --all to
    /// every process in it.
    Kill {
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a container: its cgroup, state and anything else it left.
    Delete {
        /// Kill it first if it is still running.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach, wait for it, delete it and exit
    /// with its exit code.
    Run(RunArgs),
    /// Run another process inside a running container.
    Exec(ExecArgs),
    /// List the containers under --root.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print the ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the container's processes (`ps` output filtered to them, or a JSON list of pids).
    Ps {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
        /// Arguments for ps(1) (default: -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of the container (cgroup freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print what this runtime supports, as runtime-spec's features document.
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle directory (config.json and the rootfs).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid (as the host sees it) to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pseudo-terminal's master to (config.json's process.terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for compatibility; isolab always pivots into a mount namespace when it has one.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for compatibility (isolab does not create a session keyring).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra file descriptors (3, 4, ...) into the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits (delete it yourself later).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A runtime-spec `process` JSON file describing what to run (instead of the arguments).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a terminal; its master goes to --console-socket.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs (it is re-parented to the caller's subreaper).
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variables (KEY=VALUE), added to the container's.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Extra capabilities for the process (CAP_NET_ADMIN, ...).
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Accepted for compatibility; isolab joins the container's cgroup.
    #[arg(long)]
    pub ignore_paused: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The command and its arguments (when no --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Parses `argv` and runs the command; returns the exit code.
pub fn run(argv: Vec<std::ffi::OsString>) -> u8 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let log = Log {
        file: cli.log.clone(),
        format: cli.log_format,
    };
    match dispatch(cli, &log) {
        Ok(code) => code,
        Err(e) => {
            log.error(&e.to_string());
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli, log: &Log) -> Result<u8, RuntimeError> {
    if cli.version {
        println!(
            "isolab-runtime version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            crate::OCI_VERSION
        );
        return Ok(0);
    }
    if cli.systemd_cgroup {
        return Err(RuntimeError::SystemdCgroup);
    }
    let Some(command) = cli.command else {
        return Err(RuntimeError::Usage(
            "no command given: try `isolab-runtime --help`".into(),
        ));
    };
    let root = Root::new(cli.root);
    match command {
        Command::Create(args) => crate::create::create(&root, &args, log).map(|_| 0),
        Command::Start { id } => crate::start::start(&root, &id, log).map(|()| 0),
        Command::Run(args) => crate::start::run(&root, &args, log),
        Command::State { id } => crate::manage::state(&root, &id).map(|()| 0),
        Command::Kill { all, id, signal } => {
            crate::manage::kill(&root, &id, &signal, all).map(|()| 0)
        }
        Command::Delete { force, id } => crate::manage::delete(&root, &id, force, log).map(|()| 0),
        Command::Exec(args) => crate::exec::exec(&root, &args),
        Command::List { format, quiet } => crate::manage::list(&root, format, quiet).map(|()| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => crate::manage::ps(&root, &id, format, &ps_args).map(|()| 0),
        Command::Pause { id } => crate::manage::pause(&root, &id, true).map(|()| 0),
        Command::Resume { id } => crate::manage::pause(&root, &id, false).map(|()| 0),
        Command::Features => crate::features::print().map(|()| 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("isolab-runtime").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn podmans_command_lines_parse() {
        let cli = parse(&[
            "--root",
            "/run/x",
            "--log",
            "/tmp/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "id1",
        ]);
        assert_eq!(cli.root, PathBuf::from("/run/x"));
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(
            matches!(cli.command, Some(Command::Create(a)) if a.id == "id1" && a.bundle == std::path::Path::new("/b"))
        );
        let cli = parse(&[
            "exec",
            "--pid-file",
            "/p",
            "--process",
            "/proc.json",
            "--detach",
            "--tty",
            "--console-socket",
            "/s",
            "id1",
        ]);
        assert!(
            matches!(cli.command, Some(Command::Exec(a)) if a.detach && a.tty && a.process.is_some())
        );
        let cli = parse(&["kill", "id1", "9"]);
        assert!(matches!(cli.command, Some(Command::Kill { signal, .. }) if signal == "9"));
        let cli = parse(&["exec", "id1", "sh", "-c", "echo hi"]);
        assert!(
            matches!(cli.command, Some(Command::Exec(a)) if a.command == ["sh", "-c", "echo hi"])
        );
        let cli = parse(&["delete", "--force", "id1"]);
        assert!(matches!(
            cli.command,
            Some(Command::Delete { force: true, .. })
        ));
    }
}
