//! Why a lab could not finish (as opposed to a check that failed, which is a result).

use std::path::PathBuf;

/// An error that stops a lab before its checks are done.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// No lab has that name or number.
    #[error("no lab {query:?}; the labs are: {available}")]
    UnknownLab { query: String, available: String },
    /// A step's program could not be started at all.
    #[error("cannot run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A step ran longer than a lab step may.
    #[error("{command} did not finish within {seconds} s (killed)")]
    Timeout { command: String, seconds: u64 },
    /// Preparing the lab's own files (temp dir, helper, marker files) failed.
    #[error("cannot prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step's output did not have the shape the lab relies on (e.g. no address printed).
    #[error("unexpected output from {command}: {detail}")]
    Output { command: String, detail: String },
    /// The user pressed Ctrl-C; everything the lab made has been removed.
    #[error("interrupted")]
    Interrupted,
}

impl LabError {
    pub(crate) fn prepare(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Prepare { path, source }
    }
}
