//! The `isolab-runtime` binary: runc's command line over isolab's engine (see the library's
//! documentation). `podman --runtime /path/to/isolab-runtime` drives it.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(isolab_runtime::main_with_args(
        std::env::args_os().collect(),
    ))
}
