//! Tiny static programs that run the *same instructions* on the host, in a container and (as
//! isolab's stub guest does) in a microVM.
//!
//! To compare a system call on the host with one inside a container, the workload must be
//! identical and must not drag in anything else: no dynamic loader, no libc start-up, no page
//! faults in the loop. So the bench writes its probes as raw ELF executables of a few hundred
//! bytes: an ELF header, one or two `PT_LOAD` program headers telling the kernel where to map
//! the code (and a zero-filled buffer: a segment whose file size is 0 but memory size is not is
//! how `.bss` works), then machine code that makes `exit(2)` its last system call. `execve`
//! needs nothing more — the kernel's ELF loader maps the segments and jumps to `e_entry`.
//!
//! Every probe takes its iteration count as an immediate patched into the code. Its cost per
//! iteration is then a difference of two runs, `(t(N) − t(0)) / N`: start-up, exec and exit are
//! paid by both and cancel, leaving only the loop — measured by wall clock outside, so it is
//! the same clock for every environment.
//!
//! The loops (assembled with GNU as, kept here as bytes so building needs no assembler):
//! - `getpid`: `mov eax, 39; syscall` N times — the classic minimal system call (C4).
//! - `cpu`: the microVM stub's register-only loop (`add; imul; xor; dec; jnz`), instruction for
//!   instruction, so guest/host/container ratios compare the same code (C3).
//! - `memory`: first touch of a buffer with `rep stosq`, then P read-modify-write passes
//!   (`inc qword [rdi]`) — again the stub's memory workload (C3).
//! - `triad`: STREAM's triad `a[i] = b[i] + s·c[i]` over three f64 arrays with SSE2 packed
//!   doubles. STREAM counts 24 bytes per element per pass (read b, read c, write a) and so do
//!   we, so the figure compares with published STREAM numbers — except that the write-allocate
//!   read of `a` the cache does behind our back is not counted, exactly as in STREAM.
//! - `chroot-escape`: the classic escape from a chroot (C10) — `mkdir` a directory, `chroot`
//!   into it *without* `chdir`, so the working directory is now outside the root; `chdir("..")`
//!   64 times, which climbs to the real top because the root check only stops a walk that
//!   passes *through* the root; `chroot(".")`; then `execve(argv[1], argv + 1)`. Run inside a
//!   container entered with `chroot(2)`, the command then sees the host's files; entered with
//!   `pivot_root(2)`, whose old root is unmounted, the climb ends at the container's own root.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the probe's code is mapped (the classic non-PIE base).
const CODE_VADDR: u64 = 0x40_0000;
/// Where the memory probe's zero-filled buffer is mapped.
const BUFFER_VADDR: u64 = 0x1000_0000;
const EHDR_BYTES: usize = 64;
const PHDR_BYTES: usize = 56;

/// `mov r12, N; test; jz done; loop: mov eax, 39; syscall; dec r12; jnz loop; done: exit(0)`.
const GETPID: [u8; 36] = [
    0x49, 0xbc, 0, 0, 0, 0, 0, 0, 0, 0, // movabs r12, N   (imm at 2)
    0x4d, 0x85, 0xe4, 0x74, 0x0c, // test r12, r12; jz done
    0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05, // mov eax, 39 (getpid); syscall
    0x49, 0xff, 0xcc, 0x75, 0xf4, // dec r12; jnz loop
    0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05, // exit(0)
];

/// The stub guest's CPU loop; N must be at least 1.
const CPU: [u8; 41] = [
    0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rcx, N   (imm at 2)
    0x31, 0xc0, 0xba, 0x01, 0x00, 0x00, 0x00, // xor eax, eax; mov edx, 1
    0x48, 0x01, 0xd0, 0x48, 0x6b, 0xc0, 0x03, // add rax, rdx; imul rax, rax, 3
    0x48, 0x31, 0xc8, 0x48, 0xff, 0xc9, 0x75, 0xf1, // xor rax, rcx; dec rcx; jnz
    0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05, // exit(0)
];

/// First touch with `rep stosq`, then P passes of `inc qword [rdi]` over the buffer.
const MEMORY: [u8; 87] = [
    0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rdi, BUF      (imm at 2)
    0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rcx, QWORDS   (imm at 12)
    0x31, 0xc0, 0xfc, 0xf3, 0x48, 0xab, // xor eax, eax; cld; rep stosq
    0x49, 0xbc, 0, 0, 0, 0, 0, 0, 0, 0, // movabs r12, PASSES   (imm at 28)
    0x4d, 0x85, 0xe4, 0x74, 0x25, // test r12, r12; jz done
    0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0, // pass: movabs rdi, BUF    (imm at 43)
    0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rcx, QWORDS       (imm at 53)
    0x48, 0xff, 0x07, 0x48, 0x83, 0xc7, 0x08, // inc qword [rdi]; add rdi, 8
    0x48, 0xff, 0xc9, 0x75, 0xf4, // dec rcx; jnz
    0x49, 0xff, 0xcc, 0x75, 0xdb, // dec r12; jnz pass
    0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05, // exit(0)
];

/// First touch of a, b and c (every f64 = 1.0 with `rep stosq`), then P passes of the STREAM
/// triad `a[i] = b[i] + s * c[i]` (s = 3.0), two f64 per SSE2 `movupd`/`mulpd`/`addpd` step —
/// the stub's triad workload, instruction for instruction.
const TRIAD: [u8; 147] = [
    0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rdi, BUF (a)         (imm at 2)
    0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rcx, QWORDS (a+b+c)  (imm at 12)
    0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // movabs rax, 1.0
    0xfc, 0xf3, 0x48, 0xab, // cld; rep stosq
    0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0x08, 0x40, // movabs rax, 3.0 (s)
    0x66, 0x48, 0x0f, 0x6e, 0xd8, // movq xmm3, rax
    0x66, 0x0f, 0x14, 0xdb, // unpcklpd xmm3, xmm3: s in both lanes
    0x49, 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, // movabs r13, ARRAY_BYTES     (imm at 55)
    0x49, 0xbc, 0, 0, 0, 0, 0, 0, 0, 0, // movabs r12, PASSES          (imm at 65)
    0x49, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // movabs r8, BUF (a)          (imm at 75)
    0x4f, 0x8d, 0x0c, 0x28, // lea r9, [r8 + r13]  (b)
    0x4f, 0x8d, 0x14, 0x29, // lea r10, [r9 + r13] (c)
    0x4d, 0x85, 0xe4, 0x74, 0x2a, // test r12, r12; jz done
    0x31, 0xc0, // pass: xor eax, eax (byte offset into each array)
    0x66, 0x41, 0x0f, 0x10, 0x04, 0x02, // movupd xmm0, [r10 + rax]  (c)
    0x66, 0x0f, 0x59, 0xc3, // mulpd xmm0, xmm3
    0x66, 0x41, 0x0f, 0x10, 0x0c, 0x01, // movupd xmm1, [r9 + rax]   (b)
    0x66, 0x0f, 0x58, 0xc1, // addpd xmm0, xmm1
    0x66, 0x41, 0x0f, 0x11, 0x04, 0x00, // movupd [r8 + rax], xmm0   (a)
    0x48, 0x83, 0xc0, 0x10, 0x4c, 0x39, 0xe8, 0x72, 0xdd, // add rax, 16; cmp rax, r13; jb
    0x49, 0xff, 0xcc, 0x75, 0xd6, // dec r12; jnz pass
    0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05, // exit(0)
];

/// The chroot escape (position-independent: its strings are addressed relative to `rip`).
/// Exits 1 when a `chroot` fails, 2 when the `execve` does.
const CHROOT_ESCAPE: [u8; 150] = [
    0x48, 0x89, 0xe3, // mov rbx, rsp (argc, argv, envp)
    0x48, 0x8d, 0x3d, 0x73, 0x00, 0x00, 0x00, 0xbe, 0xed, 0x01, 0x00,
    0x00, // lea rdi, dir; 0755
    0xb8, 0x53, 0x00, 0x00, 0x00, 0x0f, 0x05, // mkdir
    0x48, 0x8d, 0x3d, 0x60, 0x00, 0x00, 0x00, 0xb8, 0xa1, 0x00, 0x00, 0x00, 0x0f,
    0x05, // chroot(dir)
    0x85, 0xc0, 0x75, 0x49, // test eax, eax; jnz fail
    0x41, 0xbc, 0x40, 0x00, 0x00, 0x00, // mov r12d, 64
    0x48, 0x8d, 0x3d, 0x5c, 0x00, 0x00, 0x00, 0xb8, 0x50, 0x00, 0x00, 0x00, 0x0f,
    0x05, // chdir("..")
    0x41, 0xff, 0xcc, 0x75, 0xed, // dec r12d; jnz up
    0x48, 0x8d, 0x3d, 0x4c, 0x00, 0x00, 0x00, 0xb8, 0xa1, 0x00, 0x00, 0x00, 0x0f,
    0x05, // chroot(".")
    0x85, 0xc0, 0x75, 0x1e, // test eax, eax; jnz fail
    0x48, 0x8b, 0x7b, 0x10, 0x48, 0x8d, 0x73, 0x10, // rdi = argv[1]; rsi = &argv[1]
    0x48, 0x8b, 0x03, 0x48, 0x8d, 0x54, 0xc3, 0x10, // rdx = envp
    0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05, // execve
    0xbf, 0x02, 0x00, 0x00, 0x00, 0xeb, 0x05, // edi = 2; jmp out
    0xbf, 0x01, 0x00, 0x00, 0x00, // fail: edi = 1
    0xb8, 0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05, // out: exit
    b'/', b't', b'm', b'p', b'/', b'.', b'i', b's', b'o', b'l', b'a', b'b', b'-', b'e', b's', b'c',
    b'a', b'p', b'e', 0, // "/tmp/.isolab-escape"
    b'.', b'.', 0, b'.', 0, // "..", "."
];

/// STREAM's rule is that each array be at least four times the last-level cache, so the
/// triad measures memory rather than cache: 128 MiB per array covers L3 caches up to 32 MiB.
pub const TRIAD_ARRAY_BYTES: u64 = 128 << 20;

/// Guest RAM the stub guest gets for `workload` in the bench: the triad's three
/// [`TRIAD_ARRAY_BYTES`] arrays above the stub's 2 MiB base need more than the default.
pub fn stub_memory_bytes(workload: isolab_microvm::Workload) -> u64 {
    match workload {
        isolab_microvm::Workload::Triad => 512 << 20,
        _ => isolab_microvm::StubOptions::default().memory_bytes,
    }
}

/// One probe program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `iterations` getpid system calls.
    Getpid { iterations: u64 },
    /// `iterations` rounds of the stub's CPU loop (at least 1).
    Cpu { iterations: u64 },
    /// First touch of `buffer_bytes`, then `passes` warm passes.
    Memory { buffer_bytes: u64, passes: u64 },
    /// First touch of three f64 arrays of `array_bytes` each, then `passes` triad passes.
    Triad { array_bytes: u64, passes: u64 },
    /// The chroot escape, then `execve` of its arguments (see the module docs).
    ChrootEscape,
}

/// One triad array: whole 16-byte SSE steps, at least one.
fn triad_array_bytes(requested: u64) -> u64 {
    (requested / 16).max(1) * 16
}

fn patch(code: &mut [u8], at: usize, value: u64) {
    code[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

impl Probe {
    /// The machine code, immediates filled in.
    fn code(self) -> Vec<u8> {
        match self {
            Probe::Getpid { iterations } => {
                let mut c = GETPID.to_vec();
                patch(&mut c, 2, iterations);
                c
            }
            Probe::Cpu { iterations } => {
                let mut c = CPU.to_vec();
                patch(&mut c, 2, iterations.max(1));
                c
            }
            Probe::Memory {
                buffer_bytes,
                passes,
            } => {
                let qwords = (buffer_bytes / 8).max(1);
                let mut c = MEMORY.to_vec();
                for at in [2, 43] {
                    patch(&mut c, at, BUFFER_VADDR);
                }
                for at in [12, 53] {
                    patch(&mut c, at, qwords);
                }
                patch(&mut c, 28, passes);
                c
            }
            Probe::Triad {
                array_bytes,
                passes,
            } => {
                let array_bytes = triad_array_bytes(array_bytes);
                let mut c = TRIAD.to_vec();
                for at in [2, 75] {
                    patch(&mut c, at, BUFFER_VADDR);
                }
                patch(&mut c, 12, array_bytes * 3 / 8);
                patch(&mut c, 55, array_bytes);
                patch(&mut c, 65, passes);
                c
            }
            Probe::ChrootEscape => CHROOT_ESCAPE.to_vec(),
        }
    }

    /// The bytes of the zero-filled buffer segment (0: none): what a container's memory limit
    /// must leave room for.
    pub fn buffer_bytes(self) -> u64 {
        match self {
            Probe::Memory { buffer_bytes, .. } => (buffer_bytes / 8).max(1) * 8,
            Probe::Triad { array_bytes, .. } => triad_array_bytes(array_bytes) * 3,
            _ => 0,
        }
    }

    /// The memory cgroup limit for a container running this probe: the bench's usual 64 MiB,
    /// or the buffer plus 32 MiB for everything else when the buffer needs more.
    pub fn container_memory_limit_bytes(self) -> u64 {
        (self.buffer_bytes() + (32 << 20)).max(64 << 20)
    }

    /// A complete static ELF64 x86-64 executable.
    pub fn elf(self) -> Vec<u8> {
        let code = self.code();
        let buffer = self.buffer_bytes();
        let phnum: u16 = if buffer > 0 { 2 } else { 1 };
        let code_off = EHDR_BYTES + PHDR_BYTES * phnum as usize;
        let file_bytes = (code_off + code.len()) as u64;
        let mut elf = Vec::with_capacity(file_bytes as usize);
        // ELF header: magic, 64-bit, little endian, version 1, System V ABI.
        elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        elf.extend_from_slice(&[0; 8]);
        elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
        elf.extend_from_slice(&62u16.to_le_bytes()); // e_machine: EM_X86_64
        elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
        elf.extend_from_slice(&(CODE_VADDR + code_off as u64).to_le_bytes()); // e_entry
        elf.extend_from_slice(&(EHDR_BYTES as u64).to_le_bytes()); // e_phoff
        elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
        elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        elf.extend_from_slice(&(EHDR_BYTES as u16).to_le_bytes()); // e_ehsize
        elf.extend_from_slice(&(PHDR_BYTES as u16).to_le_bytes()); // e_phentsize
        elf.extend_from_slice(&phnum.to_le_bytes()); // e_phnum
        elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
                                        // PT_LOAD the whole file, read + execute.
        push_phdr(&mut elf, 0b101, 0, CODE_VADDR, file_bytes, file_bytes);
        if buffer > 0 {
            // PT_LOAD nothing from the file, `buffer` zeroed bytes, read + write: a .bss.
            push_phdr(&mut elf, 0b110, 0, BUFFER_VADDR, 0, buffer);
        }
        elf.extend_from_slice(&code);
        elf
    }

    /// Writes the executable to `path` (mode 0755).
    pub fn write_to(self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.elf())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
    }
}

fn push_phdr(elf: &mut Vec<u8>, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) {
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&flags.to_le_bytes()); // p_flags: X=1 W=2 R=4
    elf.extend_from_slice(&offset.to_le_bytes());
    elf.extend_from_slice(&vaddr.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&vaddr.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&filesz.to_le_bytes());
    elf.extend_from_slice(&memsz.to_le_bytes());
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    fn run(probe: Probe) -> std::time::Duration {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        probe.write_to(&path).unwrap();
        let t = Instant::now();
        let status = Command::new(&path).status().unwrap();
        let elapsed = t.elapsed();
        assert!(status.success(), "{probe:?} exited with {status}");
        elapsed
    }

    #[test]
    fn probes_are_valid_executables_that_exit_zero() {
        run(Probe::Getpid { iterations: 0 });
        run(Probe::Getpid { iterations: 1000 });
        run(Probe::Cpu { iterations: 1 });
        run(Probe::Memory {
            buffer_bytes: 1 << 20,
            passes: 0,
        });
        run(Probe::Memory {
            buffer_bytes: 1 << 20,
            passes: 2,
        });
        run(Probe::Triad {
            array_bytes: 1 << 20,
            passes: 0,
        });
        run(Probe::Triad {
            array_bytes: 1 << 20,
            passes: 2,
        });
        // A size that is not a whole number of SSE steps is rounded, never overrun.
        run(Probe::Triad {
            array_bytes: 24,
            passes: 3,
        });
    }

    #[test]
    fn triad_probe_reports_a_positive_bandwidth() {
        const ARRAY_BYTES: u64 = 8 << 20;
        const PASSES: u64 = 20;
        let short = (0..3)
            .map(|_| {
                run(Probe::Triad {
                    array_bytes: ARRAY_BYTES,
                    passes: 0,
                })
            })
            .min()
            .unwrap();
        let long = (0..3)
            .map(|_| {
                run(Probe::Triad {
                    array_bytes: ARRAY_BYTES,
                    passes: PASSES,
                })
            })
            .min()
            .unwrap();
        assert!(
            long > short,
            "0 passes: {short:?}, {PASSES} passes: {long:?}"
        );
        // STREAM's count: 24 bytes (b, c read; a written) per element per pass.
        let bytes_per_s = (3 * ARRAY_BYTES * PASSES) as f64 / (long - short).as_secs_f64();
        assert!(
            bytes_per_s.is_finite() && bytes_per_s > 0.0,
            "triad bandwidth {bytes_per_s} B/s"
        );
    }

    #[test]
    fn getpid_probe_time_grows_with_iterations() {
        // 2M system calls take at least tens of ms anywhere; 0 takes well under that.
        let none = (0..3)
            .map(|_| run(Probe::Getpid { iterations: 0 }))
            .min()
            .unwrap();
        let many = run(Probe::Getpid {
            iterations: 2_000_000,
        });
        assert!(many > none * 2, "0 calls: {none:?}, 2M calls: {many:?}");
    }
}
