//! How much memory the VMM itself costs, measured the way Firecracker specifies it: the
//! process's resident set minus the resident part of guest memory.
//!
//! Guest RAM is an anonymous mapping in the VMM process, so it shows up in the process RSS as
//! soon as the guest touches a page. `mincore(2)` tells, page by page, which parts of a mapping
//! are resident, so we can count exactly the guest's share (the kernel may merge the guest
//! mapping with neighbouring ones in /proc/self/smaps, so per-mapping Rss is not exact), and
//! /proc/self/statm gives the process total. What is left is the VMM's overhead: code, heap,
//! stacks, kvm_run pages.

use serde::Serialize;

/// Resident memory of the process, split into guest RAM and the rest.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MemoryFootprint {
    /// Resident bytes of the whole process.
    pub process_rss_bytes: u64,
    /// Resident bytes of guest RAM mappings.
    pub guest_rss_bytes: u64,
    /// The difference: what the VMM costs beyond the guest memory it touched.
    pub vmm_overhead_bytes: u64,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Resident bytes in [addr, addr + len) according to mincore(2).
fn resident_bytes(addr: u64, len: u64, page: u64) -> Option<u64> {
    let pages = len.div_ceil(page) as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: addr/len describe a live mapping owned by the caller; vec has one byte per page.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
    (rc == 0).then(|| vec.iter().filter(|b| *b & 1 != 0).count() as u64 * page)
}

/// Measures now; `guest_ranges` are (host address, length) of live guest RAM mappings.
pub fn measure(guest_ranges: &[(u64, u64)]) -> Option<MemoryFootprint> {
    let page = page_size();
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let process_rss_bytes = resident_pages * page;
    let mut guest_rss_bytes = 0;
    for &(addr, len) in guest_ranges {
        guest_rss_bytes += resident_bytes(addr, len, page)?;
    }
    Some(MemoryFootprint {
        process_rss_bytes,
        guest_rss_bytes,
        vmm_overhead_bytes: process_rss_bytes.saturating_sub(guest_rss_bytes),
    })
}
