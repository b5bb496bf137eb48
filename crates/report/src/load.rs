//! Reading results files, and refusing the ones this report cannot read honestly.
//!
//! A results file is checked in two steps: first only its `schema_version` (so a file from
//! another isolab version gets "schema_version 1, this isolab reads 2" rather than a confusing
//! "missing field" error), then the whole file against the schema. Loading writes nothing, so a
//! bad file leaves nothing behind.

use crate::error::ReportError;
use isolab_bench::schema::{Results, SCHEMA_VERSION};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One machine's results: a column of the claims table.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Short name for the column: the file's stem, made unique among the files given.
    pub label: String,
    /// The file it came from.
    pub source: PathBuf,
    /// What the file holds.
    pub results: Results,
}

/// Reads and checks every file, in order. Fails on the first bad one.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Machine>, ReportError> {
    if paths.is_empty() {
        return Err(ReportError::NoInput);
    }
    let mut machines = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.clone(),
            source,
        })?;
        machines.push(Machine {
            label: String::new(),
            source: path.clone(),
            results: parse(path, &text)?,
        });
    }
    let labels = unique_labels(paths);
    for (machine, label) in machines.iter_mut().zip(labels) {
        machine.label = label;
    }
    Ok(machines)
}

/// Parses one file's text; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Results, ReportError> {
    let not_results = |source| ReportError::NotResults {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(not_results)?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        None => {
            return Err(ReportError::NoSchemaVersion {
                path: path.to_path_buf(),
            })
        }
        Some(found) if found != u64::from(SCHEMA_VERSION) => {
            return Err(ReportError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            })
        }
        Some(_) => {}
    }
    serde_json::from_value(value).map_err(not_results)
}

/// Column names from the file stems; repeated stems get `-2`, `-3`, … in order.
fn unique_labels(paths: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "results".into())
        })
        .collect();
    let mut total: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &stems {
        *total.entry(s).or_default() += 1;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    stems
        .iter()
        .map(|s| {
            let n = seen.entry(s).or_default();
            *n += 1;
            if total[s.as_str()] > 1 && *n > 1 {
                format!("{s}-{n}")
            } else {
                s.clone()
            }
        })
        .collect()
}

/// Creates `dir` if needed and proves it writable, before any chart is drawn.
pub fn prepare_out_dir(dir: &Path) -> Result<(), ReportError> {
    let fail = |source| ReportError::OutputDir {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".isolab-report-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_results() {
        let err = parse(Path::new("x.json"), "not json {").unwrap_err();
        assert!(matches!(err, ReportError::NotResults { .. }));
        assert!(err
            .to_string()
            .contains("x.json is not an isolab results file"));
    }

    #[test]
    fn other_schema_version_is_named() {
        let err = parse(
            Path::new("old.json"),
            r#"{"schema_version": 1, "rows": []}"#,
        )
        .unwrap_err();
        let line = err.to_string();
        assert!(line.contains("schema_version 1"), "{line}");
        assert!(
            line.contains(&format!("reads version {SCHEMA_VERSION}")),
            "{line}"
        );
    }

    #[test]
    fn json_without_version_is_refused() {
        let err = parse(Path::new("a.json"), r#"{"rows": []}"#).unwrap_err();
        assert!(matches!(err, ReportError::NoSchemaVersion { .. }));
    }

    #[test]
    fn right_version_wrong_shape_is_not_results() {
        let text = format!(r#"{{"schema_version": {SCHEMA_VERSION}, "rows": 3}}"#);
        let err = parse(Path::new("a.json"), &text).unwrap_err();
        assert!(matches!(err, ReportError::NotResults { .. }));
    }

    #[test]
    fn labels_are_unique_file_stems() {
        let paths: Vec<PathBuf> = ["a/lab.json", "b/lab.json", "c/pc7.json"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(unique_labels(&paths), ["lab", "lab-2", "pc7"]);
    }
}
