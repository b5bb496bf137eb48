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

/// One probe program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `iterations` getpid system calls.
    Getpid { iterations: u64 },
    /// `iterations` rounds of the stub's CPU loop (at least 1).
    Cpu { iterations: u64 },
    /// First touch of `buffer_bytes`, then `passes` warm passes.
    Memory { buffer_bytes: u64, passes: u64 },
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
        }
    }

    /// The bytes of the buffer segment (0: none).
    fn buffer_bytes(self) -> u64 {
        match self {
            Probe::Memory { buffer_bytes, .. } => (buffer_bytes / 8).max(1) * 8,
            _ => 0,
        }
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
