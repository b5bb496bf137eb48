//! `linux.resources`: the cgroup limits of a bundle, checked against what the kernel accepts.
//!
//! The runtime spec writes "no limit" several ways (`-1`, sometimes `0`, an empty cpuset
//! string); each is read as no limit, as runc does. A value the kernel would refuse is refused
//! here, before anything is created, with the range the kernel accepts.

use super::convert::Converter;
use super::OciError;
use isolab_cgroups::limits::{CPU_SHARES_MAX, CPU_SHARES_MIN, IO_WEIGHT_MAX, IO_WEIGHT_MIN};
use isolab_cgroups::{CpuQuota, Resources};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use std::fmt::Display;
use std::ops::RangeInclusive;

impl Converter<'_> {
    /// Each controller's section in turn; absent sections leave that controller unlimited.
    pub(super) fn resources(&self, res: &LinuxResources) -> Result<Resources, OciError> {
        let mut out = Resources::default();
        if let Some(mem) = res.memory() {
            self.memory(mem, &mut out)?;
        }
        if let Some(cpu) = res.cpu() {
            self.cpu(cpu, &mut out)?;
        }
        if let Some(pids) = res.pids() {
            out.pids_limit = match pids.limit() {
                l if l > 0 => Some(l as u64),
                // The runtime spec and runc treat 0 and -1 as "no limit".
                0 | -1 => None,
                l => {
                    return Err(self.invalid(
                        "linux.resources.pids.limit",
                        l,
                        "use a count > 0, or -1 for unlimited",
                    ))
                }
            };
        }
        if let Some(weight) = res.block_io().as_ref().and_then(|b| b.weight()) {
            let field = "linux.resources.blockIO.weight";
            self.kernel_range(field, weight, IO_WEIGHT_MIN..=IO_WEIGHT_MAX, "")?;
            out.io_weight = Some(weight);
        }
        Ok(out)
    }

    /// `memory.limit` and `memory.swap`; swap is memory + swap, so never below the limit.
    fn memory(&self, mem: &LinuxMemory, out: &mut Resources) -> Result<(), OciError> {
        out.memory_limit_bytes = match mem.limit() {
            None | Some(-1) => None,
            Some(v) if v > 0 => Some(v as u64),
            Some(v) => {
                return Err(self.invalid(
                    "linux.resources.memory.limit",
                    v,
                    "use bytes > 0, or -1 for unlimited",
                ))
            }
        };
        let swap_field = "linux.resources.memory.swap";
        out.memory_swap_limit_bytes = match mem.swap() {
            None => None,
            Some(-1) => Some(-1),
            Some(v) if v > 0 => {
                if out
                    .memory_limit_bytes
                    .is_some_and(|limit| (v as u64) < limit)
                {
                    let reason = "it is memory + swap, so it must be >= memory.limit";
                    return Err(self.invalid(swap_field, v, reason));
                }
                Some(v)
            }
            Some(v) => {
                let reason = "use bytes (memory + swap), or -1 for unlimited swap";
                return Err(self.invalid(swap_field, v, reason));
            }
        };
        Ok(())
    }

    /// `cpu.quota` / `period`, `shares` and the cpuset strings (empty means every CPU).
    fn cpu(&self, cpu: &LinuxCpu, out: &mut Resources) -> Result<(), OciError> {
        let period_us = cpu.period().unwrap_or(CpuQuota::DEFAULT_PERIOD_US);
        out.cpu_quota = match cpu.quota() {
            None | Some(-1) | Some(0) => None,
            Some(q) if q > 0 => {
                let quota_us = q as u64;
                let quota_range = CpuQuota::MIN_US..=CpuQuota::MAX_QUOTA_US;
                self.kernel_range("linux.resources.cpu.quota", quota_us, quota_range, " µs")?;
                let period_range = CpuQuota::MIN_US..=CpuQuota::MAX_PERIOD_US;
                self.kernel_range("linux.resources.cpu.period", period_us, period_range, " µs")?;
                Some(CpuQuota {
                    quota_us,
                    period_us,
                })
            }
            Some(q) => {
                return Err(self.invalid(
                    "linux.resources.cpu.quota",
                    q,
                    "use µs > 0, or -1 for unlimited",
                ))
            }
        };
        if let Some(shares) = cpu.shares() {
            let field = "linux.resources.cpu.shares";
            self.kernel_range(field, shares, CPU_SHARES_MIN..=CPU_SHARES_MAX, "")?;
            out.cpu_shares = Some(shares);
        }
        out.cpuset_cpus = cpu.cpus().clone().filter(|s| !s.trim().is_empty());
        out.cpuset_mems = cpu.mems().clone().filter(|s| !s.trim().is_empty());
        Ok(())
    }

    /// Refuses a value outside what the kernel's cgroup file accepts, naming the range.
    fn kernel_range<T: PartialOrd + Display>(
        &self,
        field: &str,
        value: T,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Result<(), OciError> {
        if range.contains(&value) {
            return Ok(());
        }
        let reason = format!(
            "the kernel accepts {}..={}{unit}",
            range.start(),
            range.end()
        );
        Err(self.invalid(field, value, reason))
    }
}
