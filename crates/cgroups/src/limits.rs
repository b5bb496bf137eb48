//! Resource limits with docker's command-line semantics, and their parsers.
//!
//! A limit is a number the kernel enforces on a whole group of processes:
//!
//! * **memory** – a hard cap on the page cache + anonymous memory charged to the group. Past it
//!   the kernel reclaims, and when reclaim fails the OOM killer picks a task *inside the group*
//!   (the rest of the machine is unaffected). docker's `--memory 64m` is 64 MiB: suffixes are
//!   binary (k = 1024).
//! * **memory+swap** – `--memory-swap` is the *total* of memory and swap (so it must be ≥
//!   `--memory`; `-1` = unlimited swap). cgroup v1 has exactly that file
//!   (`memory.memsw.limit_in_bytes`); cgroup v2 limits swap alone (`memory.swap.max`), so v2
//!   gets `total - memory`.
//! * **CPU bandwidth** – CFS quota: the group may run `quota_us` of CPU time every `period_us`
//!   of wall time, summed over all CPUs. `--cpus 0.5` is 50 000 µs per 100 000 µs; `--cpus 2`
//!   is 200 000 µs per 100 000 µs (two full cores). Past the quota, the group's threads are
//!   *throttled* until the next period (visible as `nr_throttled` in `cpu.stat`).
//! * **CPU shares / weight** – a relative priority that only matters under contention. v1 uses
//!   shares (2..262144, default 1024), v2 a weight (1..10000, default 100); we convert like crun.
//! * **cpuset** – which CPUs and NUMA memory nodes the group may use (`0-1,3`).
//! * **pids** – the maximum number of tasks (processes + threads); `fork` fails with EAGAIN past
//!   it, which stops fork bombs.
//! * **io weight** – relative block-I/O priority (docker `--blkio-weight`, 10..1000).
//!
//! Parsing never allocates more than the returned value and never panics: every malformed input
//! becomes a one-line [`LimitError`].

use serde::{Deserialize, Serialize};

use crate::error::LimitError;

/// The limits to apply when creating a cgroup. `None` leaves the kernel's default (unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Hard memory limit (`--memory`).
    pub memory_limit_bytes: Option<u64>,
    /// Memory + swap limit (`--memory-swap`); `-1` means unlimited swap.
    pub memory_swap_limit_bytes: Option<i64>,
    /// CFS bandwidth (`--cpus`).
    pub cpu_quota: Option<CpuQuota>,
    /// Relative CPU priority in v1 shares (`--cpu-shares`, 2..=262144).
    pub cpu_shares: Option<u64>,
    /// Allowed CPUs, kernel list syntax (`--cpuset-cpus 0-1,3`).
    pub cpuset_cpus: Option<String>,
    /// Allowed memory nodes, kernel list syntax (`--cpuset-mems 0`).
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (`--pids-limit`).
    pub pids_limit: Option<u64>,
    /// Block I/O weight in docker's `--blkio-weight` scale (10..=1000).
    pub io_weight: Option<u16>,
    /// Which device nodes may be opened, in order, last match wins (`None`: leave the
    /// inherited rules alone). See [`crate::devices`].
    #[serde(default)]
    pub devices: Option<Vec<crate::devices::DeviceRule>>,
}

/// CFS bandwidth: `quota_us` of CPU time per `period_us` of wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    /// CPU time the group may use per period, summed over all CPUs.
    pub quota_us: u64,
    /// Length of the accounting period.
    pub period_us: u64,
}

impl CpuQuota {
    /// The kernel's (and docker's) default CFS period.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;
    /// The kernel refuses quotas and periods below 1 ms.
    pub const MIN_US: u64 = 1_000;
    /// The kernel refuses periods above 1 s.
    pub const MAX_PERIOD_US: u64 = 1_000_000;
    /// The kernel caps the quota at 2^44 - 1 µs (`MAX_BW` in kernel/sched/core.c).
    pub const MAX_QUOTA_US: u64 = (1 << 44) - 1;

    /// The same bandwidth expressed as a number of CPUs (`0.5` for 50 000 / 100 000).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// Bounds of v1 `cpu.shares` accepted by the kernel.
pub const CPU_SHARES_MIN: u64 = 2;
/// Bounds of v1 `cpu.shares` accepted by the kernel.
pub const CPU_SHARES_MAX: u64 = 262_144;
/// Bounds of docker's `--blkio-weight` (v1 `blkio.weight`).
pub const IO_WEIGHT_MIN: u16 = 10;
/// Bounds of docker's `--blkio-weight` (v1 `blkio.weight`).
pub const IO_WEIGHT_MAX: u16 = 1000;

/// Parses a docker memory size: `64m`, `1.5G`, `512k`, `100b`, `1048576` (bytes).
///
/// Suffixes k/m/g/t are powers of 1024, case-insensitive, optionally followed by `b` or `ib`.
/// A fraction is allowed with a suffix (`1.5g`) and rounded down to whole bytes.
pub fn parse_memory(input: &str) -> Result<u64, LimitError> {
    parse_size("--memory", input)
}

/// Parses `--memory-swap`: a size as in [`parse_memory`], or `-1` for unlimited swap.
pub fn parse_memory_swap(input: &str) -> Result<i64, LimitError> {
    if input.trim() == "-1" {
        return Ok(-1);
    }
    // parse_size caps at i64::MAX, so the conversion cannot fail.
    parse_size("--memory-swap", input).map(|v| v as i64)
}

const MEMORY_EXAMPLE: &str = "64m, 1.5g or 1048576";

fn parse_size(what: &'static str, input: &str) -> Result<u64, LimitError> {
    let s = input.trim();
    let syntax = |reason| LimitError::Syntax {
        what,
        input: input.to_owned(),
        reason,
        example: MEMORY_EXAMPLE,
    };
    if s.is_empty() {
        return Err(LimitError::Empty {
            what,
            example: MEMORY_EXAMPLE,
        });
    }
    if s.starts_with('-') {
        return Err(LimitError::Negative {
            what,
            input: input.to_owned(),
            example: MEMORY_EXAMPLE,
        });
    }
    let (number, shift) = split_unit(s).map_err(syntax)?;
    let (int_part, frac_part) = split_decimal(number).ok_or_else(|| {
        syntax("not a number with an optional k/m/g/t suffix (use digits and at most one '.')")
    })?;
    if !frac_part.is_empty() && shift == 0 {
        return Err(syntax(
            "a fraction needs a k/m/g/t suffix (whole bytes only)",
        ));
    }
    let overflow = || LimitError::Overflow {
        what,
        input: input.to_owned(),
    };
    let int: u128 = parse_digits(int_part).ok_or_else(overflow)?;
    let mut total = int.checked_shl(shift).ok_or_else(overflow)?;
    if !frac_part.is_empty() {
        if frac_part.len() > 18 {
            return Err(syntax("too many decimal places"));
        }
        let frac: u128 = parse_digits(frac_part).ok_or_else(overflow)?;
        let scale = 10u128.pow(frac_part.len() as u32);
        total += (frac << shift) / scale;
    }
    if total > i64::MAX as u128 {
        return Err(overflow());
    }
    if total == 0 {
        return Err(LimitError::Zero {
            what,
            input: input.to_owned(),
        });
    }
    Ok(total as u64)
}

/// Splits the trailing unit letters (`[kmgt]?i?b?`) off a size: the number, and the shift the
/// unit stands for (k = 10 ... t = 40, none = 0). `ib` without a k/m/g/t before it is refused.
fn split_unit(s: &str) -> Result<(&str, u32), &'static str> {
    let bytes = s.as_bytes();
    let mut end = bytes.len();
    let has_b = end > 0 && bytes[end - 1].eq_ignore_ascii_case(&b'b');
    if has_b {
        end -= 1;
    }
    let has_i = has_b && end > 0 && bytes[end - 1].eq_ignore_ascii_case(&b'i');
    if has_i {
        end -= 1;
    }
    let shift = match bytes[..end].last().map(u8::to_ascii_lowercase) {
        Some(b'k') => 10,
        Some(b'm') => 20,
        Some(b'g') => 30,
        Some(b't') => 40,
        _ => 0,
    };
    if shift != 0 {
        end -= 1;
    }
    if has_i && shift == 0 {
        return Err("`ib` must follow k, m, g or t");
    }
    Ok((&s[..end], shift))
}

/// Splits `12.5` into ("12", "5"); rejects empty integer parts, a second '.', or non-digits.
fn split_decimal(s: &str) -> Option<(&str, &str)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() {
                return None;
            }
            (i, f)
        }
        None => (s, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some((int, frac))
}

/// Decimal digits to u128; `None` on overflow (callers checked the characters already).
fn parse_digits(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

const CPUS_EXAMPLE: &str = "0.5 or 2";

/// [`parse_cpus`], refusing more CPUs than this host has (what docker checks for `--cpus`).
pub fn parse_cpus_on_host(input: &str) -> Result<CpuQuota, LimitError> {
    let q = parse_cpus(input)?;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    check_cpus_available(input, &q, available)?;
    Ok(q)
}

/// Refuses a quota of more than `available` CPUs.
pub fn check_cpus_available(input: &str, q: &CpuQuota, available: usize) -> Result<(), LimitError> {
    if u128::from(q.quota_us) * u128::from(CpuQuota::DEFAULT_PERIOD_US)
        > available as u128 * u128::from(q.period_us) * u128::from(CpuQuota::DEFAULT_PERIOD_US)
    {
        return Err(LimitError::CpusAboveHost {
            input: input.trim().to_owned(),
            available,
        });
    }
    Ok(())
}

/// Parses docker's `--cpus`: a decimal number of CPUs, at most 5 decimal places (1 µs of a
/// 100 ms period), at least 0.01 (the kernel's 1 ms minimum quota).
pub fn parse_cpus(input: &str) -> Result<CpuQuota, LimitError> {
    const WHAT: &str = "--cpus";
    let s = input.trim();
    if s.is_empty() {
        return Err(LimitError::Empty {
            what: WHAT,
            example: CPUS_EXAMPLE,
        });
    }
    if s.starts_with('-') {
        return Err(LimitError::Negative {
            what: WHAT,
            input: input.to_owned(),
            example: CPUS_EXAMPLE,
        });
    }
    let syntax = |reason| LimitError::Syntax {
        what: WHAT,
        input: input.to_owned(),
        reason,
        example: CPUS_EXAMPLE,
    };
    let (int_part, frac_part) =
        split_decimal(s).ok_or_else(|| syntax("not a decimal number of CPUs"))?;
    if frac_part.len() > 5 {
        return Err(syntax("at most 5 decimal places"));
    }
    let overflow = || LimitError::Overflow {
        what: WHAT,
        input: input.to_owned(),
    };
    let int = parse_digits(int_part).ok_or_else(overflow)?;
    let mut quota = int
        .checked_mul(u128::from(CpuQuota::DEFAULT_PERIOD_US))
        .ok_or_else(overflow)?;
    if !frac_part.is_empty() {
        let frac = parse_digits(frac_part).ok_or_else(overflow)?;
        // 100 000 µs per CPU = 10^5, so d decimal places scale by 10^(5-d).
        quota += frac * 10u128.pow(5 - frac_part.len() as u32);
    }
    if quota == 0 {
        return Err(LimitError::Zero {
            what: WHAT,
            input: input.to_owned(),
        });
    }
    if quota > u128::from(CpuQuota::MAX_QUOTA_US) {
        return Err(overflow());
    }
    let q = CpuQuota {
        quota_us: quota as u64,
        period_us: CpuQuota::DEFAULT_PERIOD_US,
    };
    validate_quota(&q)?;
    Ok(q)
}

fn validate_quota(q: &CpuQuota) -> Result<(), LimitError> {
    if !(CpuQuota::MIN_US..=CpuQuota::MAX_PERIOD_US).contains(&q.period_us) {
        return Err(LimitError::OutOfRange {
            what: "cpu period (µs)",
            value: q.period_us.to_string(),
            min: CpuQuota::MIN_US.to_string(),
            max: CpuQuota::MAX_PERIOD_US.to_string(),
        });
    }
    if !(CpuQuota::MIN_US..=CpuQuota::MAX_QUOTA_US).contains(&q.quota_us) {
        return Err(LimitError::OutOfRange {
            what: "cpu quota (µs; --cpus 0.01 is 1000)",
            value: q.quota_us.to_string(),
            min: CpuQuota::MIN_US.to_string(),
            max: CpuQuota::MAX_QUOTA_US.to_string(),
        });
    }
    Ok(())
}

/// Parses a positive integer within `min..=max`.
fn parse_bounded(
    what: &'static str,
    example: &'static str,
    input: &str,
    min: u64,
    max: u64,
) -> Result<u64, LimitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(LimitError::Empty { what, example });
    }
    if s.starts_with('-') {
        return Err(LimitError::Negative {
            what,
            input: input.to_owned(),
            example,
        });
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LimitError::Syntax {
            what,
            input: input.to_owned(),
            reason: "not a whole number",
            example,
        });
    }
    let v = parse_digits(s)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| LimitError::Overflow {
            what,
            input: input.to_owned(),
        })?;
    if v == 0 {
        return Err(LimitError::Zero {
            what,
            input: input.to_owned(),
        });
    }
    check_range(what, v, min, max)?;
    Ok(v)
}

fn check_range(what: &'static str, v: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if v < min || v > max {
        return Err(LimitError::OutOfRange {
            what,
            value: v.to_string(),
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(())
}

/// Parses `--cpu-shares` (v1 shares, 2..=262144; docker's default is 1024).
pub fn parse_cpu_shares(input: &str) -> Result<u64, LimitError> {
    parse_bounded("--cpu-shares", "512", input, CPU_SHARES_MIN, CPU_SHARES_MAX)
}

/// Parses `--pids-limit`: a positive number of tasks.
pub fn parse_pids_limit(input: &str) -> Result<u64, LimitError> {
    // pids.max is an int in the kernel.
    parse_bounded("--pids-limit", "100", input, 1, i32::MAX as u64)
}

/// Parses `--blkio-weight` (10..=1000).
pub fn parse_io_weight(input: &str) -> Result<u16, LimitError> {
    parse_bounded(
        "--blkio-weight",
        "500",
        input,
        u64::from(IO_WEIGHT_MIN),
        u64::from(IO_WEIGHT_MAX),
    )
    .map(|v| v as u16)
}

/// Parses `--cpuset-cpus` in the kernel's list syntax (`0-3,6`); returns it trimmed.
pub fn parse_cpuset_cpus(input: &str) -> Result<String, LimitError> {
    parse_cpu_list("--cpuset-cpus", input)
}

/// Parses `--cpuset-mems` in the kernel's list syntax (`0`, `0-1`); returns it trimmed.
pub fn parse_cpuset_mems(input: &str) -> Result<String, LimitError> {
    parse_cpu_list("--cpuset-mems", input)
}

fn parse_cpu_list(what: &'static str, input: &str) -> Result<String, LimitError> {
    const EXAMPLE: &str = "0-1,3";
    let s = input.trim();
    if s.is_empty() {
        return Err(LimitError::Empty {
            what,
            example: EXAMPLE,
        });
    }
    let syntax = |reason| LimitError::Syntax {
        what,
        input: input.to_owned(),
        reason,
        example: EXAMPLE,
    };
    // The kernel's NR_CPUS tops out at 8192; anything above is certainly a typo.
    let num = |t: &str| -> Result<u32, LimitError> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax("items must be N or N-M with whole numbers"));
        }
        match parse_digits(t) {
            Some(v) if v < 8192 => Ok(v as u32),
            _ => Err(syntax("CPU/node numbers must be below 8192")),
        }
    };
    for item in s.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                if num(a)? > num(b)? {
                    return Err(syntax("a range N-M needs N <= M"));
                }
            }
            None => {
                num(item)?;
            }
        }
    }
    Ok(s.to_owned())
}

/// Converts v1 `cpu.shares` to v2 `cpu.weight` the way crun does: 2..262144 maps linearly onto
/// 1..10000 (so docker's default 1024 becomes 39, not v2's default 100).
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(CPU_SHARES_MIN, CPU_SHARES_MAX);
    1 + ((s - 2) * 9999) / 262_142
}

/// Converts docker's blkio weight (10..1000) to v2 `io.weight` (1..10000) the way runc does.
pub fn io_weight_to_v2(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(IO_WEIGHT_MIN, IO_WEIGHT_MAX));
    1 + ((w - 10) * 9999) / 990
}

impl Resources {
    /// Checks the limits against each other and against the kernel's ranges, with docker's
    /// rules. [`crate::CgroupRoot::create`] calls this before touching anything.
    pub fn validate(&self) -> Result<(), LimitError> {
        if let Some(m) = self.memory_limit_bytes {
            if m == 0 {
                return Err(LimitError::Zero {
                    what: "--memory",
                    input: "0".into(),
                });
            }
            if m > i64::MAX as u64 {
                return Err(LimitError::Overflow {
                    what: "--memory",
                    input: m.to_string(),
                });
            }
        }
        if let Some(s) = self.memory_swap_limit_bytes {
            if s == 0 || s < -1 {
                return Err(LimitError::Syntax {
                    what: "--memory-swap",
                    input: s.to_string(),
                    reason: "must be a size >= --memory, or -1 for unlimited swap",
                    example: "128m or -1",
                });
            }
            if s > 0 {
                let m = self
                    .memory_limit_bytes
                    .ok_or(LimitError::SwapWithoutMemory)?;
                if (s as u64) < m {
                    return Err(LimitError::SwapBelowMemory {
                        memory_bytes: m,
                        swap_bytes: s,
                    });
                }
            }
        }
        if let Some(q) = &self.cpu_quota {
            validate_quota(q)?;
        }
        if let Some(sh) = self.cpu_shares {
            check_range("--cpu-shares", sh, CPU_SHARES_MIN, CPU_SHARES_MAX)?;
        }
        if let Some(c) = &self.cpuset_cpus {
            parse_cpuset_cpus(c)?;
        }
        if let Some(m) = &self.cpuset_mems {
            parse_cpuset_mems(m)?;
        }
        if let Some(p) = self.pids_limit {
            check_range("--pids-limit", p, 1, i32::MAX as u64)?;
        }
        if let Some(w) = self.io_weight {
            check_range(
                "--blkio-weight",
                u64::from(w),
                u64::from(IO_WEIGHT_MIN),
                u64::from(IO_WEIGHT_MAX),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
