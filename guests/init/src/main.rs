//! `/init` of isolab's Linux microVM guest; see lib.rs and guests/README.md.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match isolab_guest_init::mode_from_args(&args, std::process::id()) {
        Ok(mode) => mode,
        Err(msg) => {
            isolab_guest_init::report::emit(
                &isolab_guest_init::report::Line::new("error")
                    .kv("stage", "start")
                    .msg(msg),
            );
            std::process::exit(2);
        }
    };
    isolab_guest_init::install_panic_hook(mode == isolab_guest_init::Mode::Guest);
    std::process::exit(isolab_guest_init::run(mode));
}
