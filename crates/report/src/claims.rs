//! The ten claims the report answers, as the popular "containers vs virtual machines" articles
//! make them (the same list, with more context, is `docs/claims.md`). Ids are stable: results,
//! verdicts and the page all use them.

/// One claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// `C1` … `C10`.
    pub id: &'static str,
    /// The claim, in a sentence.
    pub says: &'static str,
    /// What isolab measures or observes to answer it.
    pub checked_by: &'static str,
}

/// Every claim, in id order.
pub const CLAIMS: [Claim; 10] = [
    Claim {
        id: "C1",
        says: "A container is up in seconds; a virtual machine needs minutes to get through \
               firmware, boot loader, kernel and init.",
        checked_by: "start → exit of the same trivial workload, each launcher timed as a whole \
                     process: containers, isolab's microVM, QEMU",
    },
    Claim {
        id: "C2",
        says: "Containers are lighter: they use fewer resources, so many more of them fit on \
               one machine than VMs.",
        checked_by: "resident memory of each launcher or VMM, the container's cgroup charge, \
                     the VMM's own overhead, and how many idle instances fit in a memory budget",
    },
    Claim {
        id: "C3",
        says: "Code in a container runs at almost bare-metal speed, because nothing emulates \
               the hardware or interprets instructions.",
        checked_by: "the same CPU loop and memory passes on the host, in a container and in a \
                     microVM guest, as ratios to the host",
    },
    Claim {
        id: "C4",
        says: "A container talks to the kernel with little or no overhead, while a VM pays for \
               the hypervisor layer in between.",
        checked_by: "nanoseconds per system call on the host and in containers (with and \
                     without seccomp) and in a guest; the cost of one VM exit",
    },
    Claim {
        id: "C5",
        says: "VMs isolate better: each runs its own kernel behind hardware-enforced \
               separation, while containers share the host's kernel.",
        checked_by: "which kernel a workload sees in each environment (`uname -r`), and what \
                     of the host it can see",
    },
    Claim {
        id: "C6",
        says: "Root inside a container is root on the host, so an escalation inside is an \
               escalation outside.",
        checked_by: "container root writing a root-owned host file through a bind mount, with \
                     and without a user namespace",
    },
    Claim {
        id: "C7",
        says: "A container is six namespaces (UTS, IPC, PID, network, mount, user) plus chroot \
               plus cgroups.",
        checked_by: "the namespaces this kernel offers against the six named, and the ones \
                     isolab's containers use",
    },
    Claim {
        id: "C8",
        says: "cgroups cap what a process group can use: memory, CPU, CPU sets, block I/O, \
               devices, freezing, number of processes.",
        checked_by: "limits enforced for real: an OOM kill at the memory limit, CPU \
                     throttling, a fork bomb stopped, a group frozen",
    },
    Claim {
        id: "C9",
        says: "An image is a stack of read-only copy-on-write layers, a container is one \
               writable layer on top, and committing it makes a new layer, like a git commit.",
        checked_by: "overlay writes landing in the upper layer only, commit producing a new \
                     layer, start cost with many layers",
    },
    Claim {
        id: "C10",
        says: "chroot gives a process its own root filesystem: the first step towards \
               containers.",
        checked_by: "the classic chroot escape tried against chroot and against pivot_root in \
                     a mount namespace",
    },
];

/// The claim with this id.
pub fn claim(id: &str) -> Option<&'static Claim> {
    CLAIMS.iter().find(|c| c.id == id)
}
