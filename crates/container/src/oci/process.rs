//! A runtime-spec `process` object on its own: what `exec --process FILE` reads (podman's
//! conmon writes one for every `podman exec`). It goes through the same checks as a bundle's
//! `process`, so an exec'd process is held to what the container's first one is.

use super::convert::Converter;
use super::OciError;
use crate::credentials::{ProcessCaps, Rlimit};
use crate::CapSet;
use oci_spec::runtime::Process;
use std::path::Path;

/// A converted `process` file.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// (uid, gid).
    pub user: (u32, u32),
    pub additional_gids: Vec<u32>,
    /// `capabilities.bounding`, when given.
    pub bounding: Option<CapSet>,
    /// The other four capability sets, when `capabilities` is given.
    pub caps: Option<ProcessCaps>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub terminal: bool,
}

/// Reads and converts the `process` JSON file at `path`; errors name the file and the field.
pub fn load_process(path: &Path) -> Result<ProcessConfig, OciError> {
    let text = std::fs::read_to_string(path).map_err(|source| OciError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let process: Process = serde_json::from_str(&text).map_err(|source| OciError::InvalidJson {
        path: path.to_path_buf(),
        source,
    })?;
    let c = Converter::new(path.parent().unwrap_or(Path::new("/")), path);
    Ok(ProcessConfig {
        args: c.args(&process)?,
        env: process.env().clone().unwrap_or_default(),
        cwd: c.cwd(&process)?,
        user: (process.user().uid(), process.user().gid()),
        additional_gids: process.user().additional_gids().clone().unwrap_or_default(),
        bounding: c.bounding(&process)?,
        caps: c.process_caps(&process)?,
        rlimits: c.rlimits(&process)?,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        terminal: process.terminal().unwrap_or(false),
    })
}
