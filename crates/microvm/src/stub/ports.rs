//! The stub guest's own device: four I/O ports through which it reports to the VMM.
//!
//! Like Firecracker's boot timer, this is a device only one kind of guest uses, so it lives with
//! that guest: the VMM attaches it beside the standard devices and never looks inside. Each
//! `out` to one of these ports is a VM exit that lands in [`StubPorts::write`]:
//!
//! * **MARK** (0x601): timestamp a phase boundary. The workloads' figures are the host-clock
//!   intervals between marks.
//! * **NOP** (0x602): nothing; the port-I/O exit loop's target.
//! * **RESULT** (0x604): a figure the guest measured itself (TSC cycles), as 32-bit halves.
//! * **EXIT** (0x600) / **OUTCOME** (0x603): the guest is done — with a status, or with "this
//!   host cannot run that" and a code. Either stops the VM.

use crate::devices::lock;
use crate::devices::{Action, PortDevice};
use crate::layout::ports;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// How the stub guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StubEnd {
    /// EXIT with this status (0 = success).
    Exited(u8),
    /// OUTCOME with this code: the host cannot run the workload.
    NotSupported(u8),
}

/// What the stub guest reported during one run.
#[derive(Debug, Default)]
pub(crate) struct StubPorts {
    marks: Mutex<Vec<Instant>>,
    result_words: Mutex<Vec<u32>>,
    end: OnceLock<StubEnd>,
}

impl StubPorts {
    /// The marks, in order.
    pub(crate) fn marks(&self) -> Vec<Instant> {
        lock(&self.marks).clone()
    }

    /// The self-measured figures, each joined from its two 32-bit halves.
    pub(crate) fn results(&self) -> Vec<u64> {
        lock(&self.result_words)
            .chunks_exact(2)
            .map(|half| u64::from(half[0]) | (u64::from(half[1]) << 32))
            .collect()
    }

    /// How the guest ended, if it reached an exit port.
    pub(crate) fn end(&self) -> Option<StubEnd> {
        self.end.get().copied()
    }
}

impl PortDevice for StubPorts {
    fn owns(&self, port: u16) -> bool {
        (ports::STUB_EXIT..=ports::STUB_RESULT).contains(&port)
    }

    fn write(&self, port: u16, data: &[u8]) -> Action {
        let byte = data.first().copied().unwrap_or(0);
        match port {
            ports::STUB_MARK => lock(&self.marks).push(Instant::now()),
            ports::STUB_RESULT => {
                let mut word = [0u8; 4];
                for (dst, src) in word.iter_mut().zip(data) {
                    *dst = *src;
                }
                lock(&self.result_words).push(u32::from_le_bytes(word));
            }
            ports::STUB_EXIT => return self.stop(StubEnd::Exited(byte)),
            ports::STUB_OUTCOME => return self.stop(StubEnd::NotSupported(byte)),
            _ => {}
        }
        Action::Resume
    }
}

impl StubPorts {
    fn stop(&self, end: StubEnd) -> Action {
        let _ = self.end.set(end);
        Action::Exit(match end {
            StubEnd::Exited(status) => status,
            StubEnd::NotSupported(_) => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_record_marks_results_and_the_end() {
        let device = StubPorts::default();
        assert!(device.owns(ports::STUB_EXIT) && device.owns(ports::STUB_RESULT));
        assert!(!device.owns(ports::COM1) && !device.owns(ports::STUB_RESULT + 1));
        assert_eq!(device.write(ports::STUB_MARK, &[0]), Action::Resume);
        assert_eq!(device.write(ports::STUB_NOP, &[0]), Action::Resume);
        let value: u64 = 0x1234_5678_9abc_def0;
        for half in [value as u32, (value >> 32) as u32] {
            device.write(ports::STUB_RESULT, &half.to_le_bytes());
        }
        assert_eq!(device.results(), vec![value]);
        assert_eq!(device.marks().len(), 1);
        assert_eq!(device.end(), None);
        assert_eq!(device.write(ports::STUB_OUTCOME, &[1]), Action::Exit(0));
        assert_eq!(device.end(), Some(StubEnd::NotSupported(1)));
        // The first end wins: the VM is already stopping.
        device.write(ports::STUB_EXIT, &[3]);
        assert_eq!(device.end(), Some(StubEnd::NotSupported(1)));
    }
}
