//! Signal names as `kill` accepts them: `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`.

use crate::error::RuntimeError;

/// Parses a signal the way runc's `kill` does (a name with or without `SIG`, any case, or a
/// number).
pub fn parse(text: &str) -> Result<i32, RuntimeError> {
    let unknown = || RuntimeError::UnknownSignal(text.to_owned());
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(offset) = name.strip_prefix("RTMIN+") {
        let n = offset.parse::<i32>().map_err(|_| unknown())?;
        let sig = libc::SIGRTMIN() + n;
        return if n >= 0 && sig <= libc::SIGRTMAX() {
            Ok(sig)
        } else {
            Err(unknown())
        };
    }
    if name == "RTMIN" {
        return Ok(libc::SIGRTMIN());
    }
    if name == "RTMAX" {
        return Ok(libc::SIGRTMAX());
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        for (text, want) in [
            ("TERM", libc::SIGTERM),
            ("SIGTERM", libc::SIGTERM),
            ("sigkill", libc::SIGKILL),
            ("kill", libc::SIGKILL),
            ("9", libc::SIGKILL),
            ("15", libc::SIGTERM),
            ("HUP", libc::SIGHUP),
            ("RTMIN+1", libc::SIGRTMIN() + 1),
        ] {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn unknown_signals_are_refused_with_the_name() {
        for bad in ["FOO", "SIGFOO", "0", "65", "-1", "", "RTMIN+99"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("unknown signal"), "{bad}: {err}");
        }
    }
}
