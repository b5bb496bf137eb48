//! isolab's container runtime.
//!
//! A container is not a kernel object: it is an ordinary process started with a few kernel
//! features combined — namespaces (what it can see), cgroups (what it can use), a root filesystem
//! made of copy-on-write layers (what files it has), and optionally a user namespace and a
//! seccomp filter (what its root may do). The spawn path in [`spawn`] puts them together in the
//! order the kernel requires and reads top to bottom; start there.

pub mod capabilities;
pub mod credentials;
pub mod exec_path;
pub mod hardening;
pub mod image;
pub mod join;
pub mod namespaces;
pub mod network;
pub mod oci;
pub mod rootfs;
pub mod seccomp;
pub mod spawn;
pub mod spec;
pub mod stdio;
pub mod utc;

pub use capabilities::CapSet;
pub use namespaces::{Namespace, NamespaceSet};
pub use spec::{
    BindMount, ContainerSpec, IdMapping, NetworkMode, RootMode, RootfsSource, SeccompMode,
};
