//! What can stop a report before it is written. Every variant names the file and says how to
//! fix it, because the CLI prints exactly one line for it.

use std::path::PathBuf;

/// Why no report was written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No results file was given.
    #[error("no results file given: pass the JSON that `isolab bench --out FILE` wrote")]
    NoInput,
    /// A results file could not be read.
    #[error("cannot read results file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A results file is not JSON, or not the JSON `isolab bench` writes.
    #[error(
        "{path} is not an isolab results file (give the JSON that `isolab bench --out FILE` wrote)"
    )]
    NotResults {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A results file has no `schema_version` field at all.
    #[error(
        "{path} has no schema_version: it was not written by `isolab bench` (give the JSON from `isolab bench --out FILE`)"
    )]
    NoSchemaVersion { path: PathBuf },
    /// A results file was written by another version of the schema.
    #[error(
        "{path} has schema_version {found}, this isolab reads version {expected}: re-run `isolab bench` with this isolab, or report with the isolab that wrote it"
    )]
    SchemaVersion {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
    /// The output directory cannot be created or written.
    #[error("cannot write the report to {dir} (choose a writable directory with --out DIR)")]
    OutputDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn (a bug, not bad input: the drawing backend is in memory).
    #[error("drawing chart {chart:?} failed")]
    Draw {
        chart: &'static str,
        #[source]
        source: plotters::drawing::DrawingAreaErrorKind<std::io::Error>,
    },
    /// Writing the page failed after the checks passed (disk full, directory removed).
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
