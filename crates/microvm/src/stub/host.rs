//! The stub's loops run on the host, instruction for instruction, for guest/host ratios.

use std::time::{Duration, Instant};

/// The stub's CPU loop run on the host, instruction for instruction; for guest/host ratios.
pub fn host_cpu_loop(iterations: u64) -> Duration {
    let start = Instant::now();
    let iterations = iterations.max(1);
    // SAFETY: register-only arithmetic on the named, clobbered registers; no memory access.
    unsafe {
        std::arch::asm!(
            "xor eax, eax",
            "mov edx, 1",
            "2:",
            "add rax, rdx",
            "imul rax, rax, 3",
            "xor rax, rcx",
            "dec rcx",
            "jnz 2b",
            inout("rcx") iterations => _,
            out("rax") _,
            out("rdx") _,
            options(nostack, nomem),
        );
    }
    start.elapsed()
}

/// The stub's memory workload run on the host: (first-touch, warm) bytes per second.
pub fn host_memory(buffer_bytes: u64, passes: u64) -> (f64, f64) {
    let qwords = (buffer_bytes / 8).max(1) as usize;
    let passes = passes.max(1);
    // Fresh pages from the kernel, as the guest's are: first touch faults them in.
    let mut buffer: Vec<u64> = Vec::with_capacity(qwords);
    let ptr = buffer.as_mut_ptr();
    let start = Instant::now();
    // SAFETY: writes exactly `qwords` u64s into the allocation made for them.
    unsafe {
        std::arch::asm!(
            "cld",
            "rep stosq",
            inout("rdi") ptr => _,
            inout("rcx") qwords => _,
            in("rax") 0u64,
            options(nostack),
        );
    }
    // SAFETY: the `qwords` elements were all initialized just above.
    unsafe { buffer.set_len(qwords) };
    let first = start.elapsed();
    let start = Instant::now();
    for _ in 0..passes {
        // SAFETY: increments each of the `qwords` initialized u64s in place.
        unsafe {
            std::arch::asm!(
                "2:",
                "inc qword ptr [rdi]",
                "add rdi, 8",
                "dec rcx",
                "jnz 2b",
                inout("rdi") ptr => _,
                inout("rcx") qwords => _,
                options(nostack),
            );
        }
    }
    let warm = start.elapsed();
    std::hint::black_box(&buffer);
    let bytes = (qwords * 8) as f64;
    (
        bytes / first.as_secs_f64(),
        bytes * passes as f64 / warm.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_reference_loops_run() {
        assert!(host_cpu_loop(1000) > Duration::ZERO);
        let (first, warm) = host_memory(1 << 20, 2);
        assert!(first > 0.0 && warm > 0.0);
    }
}
