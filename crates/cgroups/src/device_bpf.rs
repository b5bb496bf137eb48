//! cgroup v2 device rules: a generated eBPF program attached to the container's cgroup.
//!
//! cgroup v2 dropped v1's `devices.allow`/`devices.deny` files. Instead the kernel runs a
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` whenever a task in the cgroup opens or creates
//! a device node. The program gets a three-field context,
//!
//! ```text
//! struct bpf_cgroup_dev_ctx {
//!     u32 access_type;   // (access << 16) | type; access: MKNOD 1, READ 2, WRITE 4;
//!                        //                        type: BLOCK 1, CHAR 2
//!     u32 major;
//!     u32 minor;
//! };
//! ```
//!
//! and returns 1 (allow) or 0 (deny: the `open` fails with EPERM). The program is loaded with
//! `bpf(BPF_PROG_LOAD)`, which runs the in-kernel **verifier** over it (bounded, no loops past
//! its limits, every register initialised, only context reads within the struct), and attached
//! with `bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)` to an open fd of the cgroup directory. The
//! attachment holds the program: our fd can be closed right after, and removing the cgroup
//! detaches and frees it. With `BPF_F_ALLOW_MULTI` every program attached along the path from the
//! root must allow an access, so a container can never get more than its parent allows.
//!
//! The program generated here is a straight line (no loops, only forward jumps): load the four
//! fields into registers, then test the rules **last first**, each as a block that jumps past
//! itself when a field does not match and otherwise returns the rule's verdict; when no rule
//! matched it returns 0. That gives the list exactly the "last matching rule wins, default deny"
//! meaning of the v1 files and of the OCI specification.

use crate::devices::{DeviceKind, DeviceRule};
use crate::error::CgroupError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` and `BPF_CGROUP_DEVICE` from linux/bpf.h.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const ATTACH_CGROUP_DEVICE: u32 = 6;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_F_ALLOW_MULTI: u32 = 2;

// eBPF opcodes (linux/bpf_common.h + bpf.h): class | op | source.
const LDX_W_MEM: u8 = 0x61; // BPF_LDX | BPF_W | BPF_MEM
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: r1 holds the context pointer on entry, r0 the return value.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// `struct bpf_insn`: opcode, dst (low nibble) and src (high nibble) registers, offset, imm.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// A generated device program, not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProgram {
    insns: Vec<Insn>,
}

/// Access bits as the kernel encodes them in `access_type >> 16`.
fn access_bits(rule: &DeviceRule) -> i32 {
    let a = rule.access;
    (a.mknod as i32) | ((a.read as i32) << 1) | ((a.write as i32) << 2)
}

/// The block testing one rule; every "does not match" jump lands right after it.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // Jumps are emitted with offset 0 and patched once the block length is known.
    let mut block = Vec::with_capacity(8);
    let mut jumps = Vec::new();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Char | DeviceKind::Block => {
            let t = if rule.kind == DeviceKind::Char { 2 } else { 1 };
            jumps.push(block.len());
            block.push(insn(JNE_K, R_TYPE, 0, 0, t));
        }
    }
    let bits = access_bits(rule);
    if bits != 7 {
        // Matches only when every requested bit is among the rule's: (req & rule) == req.
        block.push(insn(ALU32_MOV_X, R1, R_ACCESS, 0, 0));
        block.push(insn(ALU32_AND_K, R1, 0, 0, bits));
        jumps.push(block.len());
        block.push(insn(JNE_X, R1, R_ACCESS, 0, 0));
    }
    for (reg, value) in [(R_MAJOR, rule.major), (R_MINOR, rule.minor)] {
        if let Some(v) = value {
            jumps.push(block.len());
            // Device numbers are below 2^20, so the sign-extended immediate is exact.
            block.push(insn(JNE_K, reg, 0, 0, v as i32));
        }
    }
    block.push(insn(ALU64_MOV_K, R0, 0, 0, rule.allow as i32));
    block.push(insn(EXIT, 0, 0, 0, 0));
    let len = block.len();
    for j in jumps {
        block[j].off = (len - j - 1) as i16;
    }
    block
}

impl DeviceProgram {
    /// Generates the program for `rules` (OCI order: the last matching rule wins).
    pub fn compile(rules: &[DeviceRule]) -> DeviceProgram {
        let mut insns = vec![
            insn(LDX_W_MEM, R_TYPE, R1, 0, 0),
            insn(ALU32_AND_K, R_TYPE, 0, 0, 0xffff),
            insn(LDX_W_MEM, R_ACCESS, R1, 0, 0),
            insn(ALU32_RSH_K, R_ACCESS, 0, 0, 16),
            insn(LDX_W_MEM, R_MAJOR, R1, 4, 0),
            insn(LDX_W_MEM, R_MINOR, R1, 8, 0),
        ];
        for rule in rules.iter().rev() {
            insns.extend(rule_block(rule));
            // A rule matching every access ends the program: the rules before it can never
            // decide, and the verifier refuses unreachable instructions.
            let catch_all = rule.kind == DeviceKind::All
                && rule.major.is_none()
                && rule.minor.is_none()
                && access_bits(rule) == 7;
            if catch_all {
                return DeviceProgram { insns };
            }
        }
        insns.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
        insns.push(insn(EXIT, 0, 0, 0, 0));
        DeviceProgram { insns }
    }

    /// Number of instructions (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program is empty (never: there is always the final deny).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Loads the program into the kernel (the verifier checks it) and returns its fd.
    pub fn load(&self) -> Result<OwnedFd, CgroupError> {
        // Without a log first (the verifier's trace costs time); on failure again with one, so
        // the error can say why.
        self.load_with_log(None).map_err(|source| {
            let mut log = vec![0u8; 1 << 20];
            let _ = self.load_with_log(Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            // The verifier ends with a "processed N insns" summary; the reason is just before.
            let reason = text
                .trim_end_matches('\0')
                .lines()
                .rfind(|l| !l.trim().is_empty() && !l.starts_with("processed "))
                .map(|l| format!("; verifier: {l}"))
                .unwrap_or_default();
            CgroupError::DeviceProgram {
                op: "loading (bpf BPF_PROG_LOAD)",
                path: "the device program".into(),
                verifier: reason,
                source,
            }
        })
    }

    fn load_with_log(&self, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
        let license = c"GPL";
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let attr = ProgLoadAttr {
            prog_type: PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: self.insns.len() as u32,
            insns: self.insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name: *b"isolab_devices\0\0",
            prog_ifindex: 0,
            expected_attach_type: ATTACH_CGROUP_DEVICE,
        };
        // SAFETY: `attr` is a valid BPF_PROG_LOAD attribute block of the size passed; the
        // instruction array, license string and log buffer it points to outlive the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us; we are its only owner.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Loads the program and attaches it to the cgroup v2 directory `dir`. The attachment keeps
    /// the program alive; it goes away with the cgroup.
    pub fn attach(&self, dir: &Path) -> Result<(), CgroupError> {
        let prog = self.load()?;
        let cgroup =
            std::fs::File::open(dir).map_err(|e| CgroupError::io("open", dir.to_path_buf(), e))?;
        let attr = ProgAttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: ATTACH_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            replace_bpf_fd: 0,
        };
        // SAFETY: `attr` is a valid BPF_PROG_ATTACH attribute block of the size passed, naming
        // two fds we hold open for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_ATTACH,
                &attr as *const ProgAttachAttr,
                std::mem::size_of::<ProgAttachAttr>(),
            )
        };
        if rc < 0 {
            return Err(CgroupError::DeviceProgram {
                op: "attaching (bpf BPF_PROG_ATTACH)",
                path: dir.to_path_buf(),
                verifier: String::new(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr` (fields up to `expected_attach_type`).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceAccess;

    /// Runs the generated program on one access, the way the kernel would (a tiny interpreter
    /// for the few opcodes we emit), so the rule logic is tested without privileges.
    fn eval(p: &DeviceProgram, kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p.insns[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W_MEM => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const CHAR: u32 = 2;
    const BLOCK: u32 = 1;
    const READ: u32 = 2;
    const WRITE: u32 = 4;
    const MKNOD: u32 = 1;

    #[test]
    fn standard_set_allows_null_and_denies_kvm() {
        let p = DeviceProgram::compile(&DeviceRule::standard_set());
        assert_eq!(eval(&p, CHAR, READ | WRITE, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, CHAR, READ, 136, 7), 1, "/dev/pts/7");
        assert_eq!(eval(&p, CHAR, READ | WRITE, 10, 232), 0, "/dev/kvm");
        assert_eq!(eval(&p, BLOCK, READ, 8, 0), 0, "/dev/sda");
        assert_eq!(eval(&p, CHAR, MKNOD, 10, 232), 1, "mknod is allowed");
        assert_eq!(eval(&p, BLOCK, MKNOD, 8, 0), 1, "mknod is allowed");
    }

    #[test]
    fn last_matching_rule_wins() {
        let mut rules = vec![DeviceRule::everything(true)];
        rules.push(DeviceRule {
            allow: false,
            kind: DeviceKind::Char,
            major: Some(10),
            minor: Some(232),
            access: DeviceAccess::parse("rw").unwrap(),
        });
        let p = DeviceProgram::compile(&rules);
        assert_eq!(eval(&p, CHAR, READ, 10, 232), 0);
        assert_eq!(
            eval(&p, CHAR, MKNOD, 10, 232),
            1,
            "m is not in the deny rule"
        );
        assert_eq!(eval(&p, BLOCK, READ, 8, 0), 1);
        assert_eq!(eval(&p, CHAR, READ, 1, 3), 1);
    }

    #[test]
    fn empty_list_denies_everything() {
        let p = DeviceProgram::compile(&[]);
        assert_eq!(eval(&p, CHAR, READ, 1, 3), 0);
    }
}
