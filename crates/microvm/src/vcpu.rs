//! The vCPU loop: KVM_RUN, handle the exit, repeat — and how to stop a vCPU from outside.
//!
//! KVM_RUN is a blocking ioctl: the calling thread *becomes* the virtual CPU until the guest
//! does something KVM wants userspace to handle (port/MMIO I/O, shutdown, an error). A guest
//! that loops forever never exits, so the only way to stop it is to interrupt the thread: a
//! signal makes KVM_RUN return EINTR. A signal that arrives just *before* KVM_RUN would be lost,
//! so the handler also sets `kvm_run.immediate_exit`, which KVM checks on entry (this is the
//! race-free kick the KVM API documents). isolab uses real-time signal SIGRTMIN+2 for it.
//!
//! Time limit: vCPU 0 arms a POSIX timer that delivers the kick signal to its own thread at
//! the deadline (and every 10 ms after, in case a tick lands between the checks). When any
//! vCPU stops, it sets a shared flag and kicks the others, so none is left behind.

use crate::devices::{Action, Devices};
use crate::error::{Result, VmError};
use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Why the VM stopped, as far as the vCPU loop can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// KVM_SYSTEM_EVENT_SHUTDOWN (ACPI/PSCI power off) or HLT with no irqchip.
    PowerOff,
    /// Reset through the i8042 or KVM_SYSTEM_EVENT_RESET.
    Reset,
    /// A device's exit port, with the status the guest wrote.
    ExitPort(u8),
    /// The console showed what the caller waited for.
    ConsoleMatched,
    /// Another vCPU stopped the VM.
    Kicked,
}

/// State the vCPUs of one VM share.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    tids: Vec<AtomicI32>,
    /// When vCPU 0 first entered KVM_RUN, and when the stopping exit was handled.
    first_run: Mutex<Option<Instant>>,
    stopped_at: Mutex<Option<Instant>>,
}

impl Shared {
    fn new(vcpus: usize) -> Self {
        Shared {
            stop: AtomicBool::new(false),
            tids: (0..vcpus).map(|_| AtomicI32::new(0)).collect(),
            first_run: Mutex::new(None),
            stopped_at: Mutex::new(None),
        }
    }

    /// Stops every vCPU: set the flag first, then kick (a vCPU checks the flag after
    /// registering, so it either sees the flag or gets the signal).
    fn stop_all(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            if let Ok(mut at) = self.stopped_at.lock() {
                at.get_or_insert_with(Instant::now);
            }
        }
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        for tid in &self.tids {
            let tid = tid.load(Ordering::SeqCst);
            if tid != 0 {
                // SAFETY: tgkill only sends a signal; our handler for it is async-signal-safe.
                // A tid that just exited yields ESRCH, which is harmless.
                unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, kick_signal()) };
            }
        }
    }
}

thread_local! {
    /// The kvm_run page of the vCPU this thread is running, for the signal handler.
    static RUN_PAGE: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_kick(_signal: libc::c_int) {
    let page = RUN_PAGE.with(Cell::get);
    if !page.is_null() {
        // SAFETY: RUN_PAGE is set only while this thread's VcpuFd (which owns the kvm_run
        // mapping) is alive and cleared before it is dropped, so `page` points into it.
        let flag = unsafe { std::ptr::addr_of_mut!((*page).immediate_exit) };
        // SAFETY: `flag` is a valid byte of that mapping; KVM polls it on entry to KVM_RUN and
        // a volatile store is async-signal-safe.
        unsafe { flag.write_volatile(1) };
    }
}

fn install_kick_handler() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value we then fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        // No SA_RESTART: KVM_RUN must return EINTR.
        action.sa_flags = 0;
        // SAFETY: installs a handler that only does an async-signal-safe volatile store.
        if unsafe { libc::sigaction(kick_signal(), &action, std::ptr::null_mut()) } != 0 {
            result = Err(VmError::Sys {
                op: "sigaction(SIGRTMIN+2)",
                source: std::io::Error::last_os_error(),
            });
        }
    });
    result
}

/// A POSIX timer that kicks the calling thread at the deadline; deleted on drop.
struct Watchdog(libc::timer_t);

impl Watchdog {
    fn arm(timeout: Duration) -> Result<Self> {
        let sys = |op| {
            move |_: ()| VmError::Sys {
                op,
                source: std::io::Error::last_os_error(),
            }
        };
        // SAFETY: sigevent is plain data; zeroed is a valid starting value.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = kick_signal();
        // SAFETY: gettid has no preconditions.
        event.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: event and timer are valid for the call.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
            return Err(sys("timer_create")(()));
        }
        let watchdog = Watchdog(timer);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            },
            it_value: libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32).max(1),
            },
        };
        // SAFETY: the timer was just created; spec is valid.
        if unsafe { libc::timer_settime(watchdog.0, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(sys("timer_settime")(()));
        }
        Ok(watchdog)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: the timer id is ours and deleted exactly once.
        unsafe { libc::timer_delete(self.0) };
    }
}

/// Clears the thread's registration (signal target, kvm_run pointer) however the loop ends.
struct Registration<'a> {
    shared: &'a Shared,
    index: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.tids[self.index].store(0, Ordering::SeqCst);
        RUN_PAGE.with(|page| page.set(std::ptr::null_mut()));
    }
}

/// Runs vCPU `index` until the VM stops. vCPU 0 owns the deadline.
fn run(
    vcpu: &mut VcpuFd,
    index: usize,
    devices: &Devices,
    shared: &Shared,
    deadline: Option<(Instant, Duration)>,
) -> Result<Stop> {
    install_kick_handler()?;
    RUN_PAGE.with(|page| page.set(vcpu.get_kvm_run() as *mut kvm_run));
    let _registration = Registration { shared, index };
    // SAFETY: gettid has no preconditions.
    shared.tids[index].store(unsafe { libc::gettid() }, Ordering::SeqCst);
    let _watchdog = match deadline {
        Some((_, timeout)) => Some(Watchdog::arm(timeout)?),
        None => None,
    };
    let result = run_loop(vcpu, index, devices, shared, deadline);
    // This thread is out of KVM_RUN: take it off the kick list before kicking the others.
    shared.tids[index].store(0, Ordering::SeqCst);
    shared.stop_all();
    result
}

/// How a run of all vCPUs ended.
#[derive(Debug)]
pub(crate) struct RunEnd {
    /// The first error or real stop (vCPUs that were merely kicked do not count).
    pub(crate) outcome: Result<Stop>,
    /// When vCPU 0 first entered KVM_RUN.
    pub(crate) first_run: Option<Instant>,
    /// When the stopping exit was handled.
    pub(crate) stopped_at: Instant,
}

/// Runs every vCPU until the VM stops: vCPU 0 on this thread (it owns the watchdog), the others
/// on threads of their own that are all joined before this returns, whatever happened.
pub(crate) fn run_all(vcpus: &mut [VcpuFd], devices: &Devices, timeout: Duration) -> RunEnd {
    let shared = Shared::new(vcpus.len());
    let deadline = Some((Instant::now() + timeout, timeout));
    let (boot_vcpu, others) = vcpus.split_at_mut(1);
    let outcome = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(others.len());
        for (i, vcpu) in others.iter_mut().enumerate() {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{}", i + 1))
                .spawn_scoped(scope, move || run(vcpu, i + 1, devices, shared, None));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    shared.stop_all();
                    return Err(VmError::Thread(e));
                }
            }
        }
        let mut outcome = run(&mut boot_vcpu[0], 0, devices, &shared, deadline);
        for handle in handles {
            let other = handle.join().unwrap_or(Ok(Stop::Kicked));
            if matches!(outcome, Ok(Stop::Kicked)) && !matches!(other, Ok(Stop::Kicked)) {
                outcome = other;
            }
        }
        outcome
    });
    let stopped_at = shared
        .stopped_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .unwrap_or_else(Instant::now);
    let first_run = shared.first_run.lock().ok().and_then(|at| *at);
    RunEnd {
        outcome,
        first_run,
        stopped_at,
    }
}

fn run_loop(
    vcpu: &mut VcpuFd,
    index: usize,
    devices: &Devices,
    shared: &Shared,
    deadline: Option<(Instant, Duration)>,
) -> Result<Stop> {
    let mut first = index == 0;
    loop {
        // Clear a kick first, then look at the flags: a kick after this point re-arms it.
        vcpu.set_kvm_immediate_exit(0);
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(Stop::Kicked);
        }
        if let Some((at, timeout)) = deadline {
            if Instant::now() >= at {
                return Err(VmError::Timeout {
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        }
        if first {
            first = false;
            if let Ok(mut at) = shared.first_run.lock() {
                *at = Some(Instant::now());
            }
        }
        let action = match vcpu.run() {
            Ok(exit) => match exit {
                VcpuExit::IoOut(port, data) => devices.io_out(port, data),
                VcpuExit::IoIn(port, data) => {
                    devices.io_in(port, data);
                    Action::Resume
                }
                VcpuExit::MmioWrite(addr, data) => devices.mmio_write(addr, data),
                VcpuExit::MmioRead(addr, data) => {
                    devices.mmio_read(addr, data);
                    Action::Resume
                }
                VcpuExit::Hlt => return Ok(Stop::PowerOff),
                VcpuExit::Shutdown => {
                    let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
                    return Err(VmError::TripleFault { rip });
                }
                VcpuExit::SystemEvent(kind, _) => match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => return Ok(Stop::PowerOff),
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => return Ok(Stop::Reset),
                    other => {
                        return Err(VmError::UnhandledExit(format!(
                            "KVM_EXIT_SYSTEM_EVENT type {other} (guest crash?)"
                        )))
                    }
                },
                VcpuExit::InternalError => return Err(internal_error(vcpu)),
                VcpuExit::FailEntry(reason, cpu) => return Err(VmError::FailEntry { reason, cpu }),
                VcpuExit::Intr => Action::Resume,
                other => {
                    return Err(VmError::UnhandledExit(format!("{other:?}")));
                }
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Action::Resume,
            Err(e) => {
                return Err(VmError::Kvm {
                    op: "KVM_RUN",
                    source: e,
                })
            }
        };
        match action {
            Action::Resume => {}
            Action::Reset => return Ok(Stop::Reset),
            Action::Exit(status) => return Ok(Stop::ExitPort(status)),
            Action::ConsoleMatched => return Ok(Stop::ConsoleMatched),
        }
    }
}

/// Names KVM's suberror and, where the host explains it, says why.
fn internal_error(vcpu: &mut VcpuFd) -> VmError {
    // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the live union member.
    let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
    let meaning = match suberror {
        1 => "an instruction KVM could not emulate",
        2 => "an exception while delivering another (simultaneous exceptions)",
        3 => "an event could not be delivered to the guest",
        4 => "an unexpected exit reason",
        _ => "unknown",
    };
    let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
    let hint = if crate::platform::KvmModule::detect() == crate::platform::KvmModule::KvmPvm {
        "; on kvm_pvm guest kernel mode (CPL0) is emulated instruction by instruction and \
         this one is not supported: run on a host with VT-x/AMD-V"
            .to_string()
    } else {
        String::new()
    };
    VmError::InternalError {
        suberror,
        meaning,
        rip,
        hint,
    }
}
