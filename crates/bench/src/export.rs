//! Writing results out: one [`Exporter`] trait, one implementation per file format.
//!
//! The JSON file is the record: everything, raw samples included, and it reads back into
//! [`Results`] (the tests check the round trip). CSV is for spreadsheets and plotting scripts:
//! **one line per row** (not per sample) with the summary figures, so a row that was not
//! measured is still a line, with an empty figure columns and its reason. Each figure column is
//! in the unit named by the `unit` column (`us`, `ns`, `bytes`, …), because rows of different
//! questions measure different things. `scope` (`whole_process` / `in_process`) and `start`
//! (`cold` / `warm`, empty off start-up) say how a row was measured. Observations (C5–C10)
//! are in the JSON only. Fields are quoted as RFC 4180 says: when they hold a
//! comma, a quote or a line break, with inner quotes doubled.

use crate::schema::{Outcome, Results};
use std::io::{self, Write};

/// Serializes a whole run into one output format.
pub trait Exporter {
    /// Writes `results` to `out`.
    fn write(&self, results: &Results, out: &mut dyn Write) -> io::Result<()>;
}

/// Pretty-printed JSON of the whole [`Results`], raw samples included.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn write(&self, results: &Results, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, results).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }
}

/// One CSV line per row with the summary figures (see the module docs for the columns).
#[derive(Debug, Default, Clone, Copy)]
pub struct CsvExporter;

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 18] = [
    "question",
    "environment",
    "workload",
    "scope",
    "start",
    "unit",
    "status",
    "n",
    "median",
    "p10",
    "p90",
    "mean",
    "min",
    "max",
    "mad",
    "outliers",
    "ratio_to_host",
    "reason",
];

/// Quotes a field when RFC 4180 requires it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

impl Exporter for CsvExporter {
    fn write(&self, results: &Results, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
        for row in &results.rows {
            let ratio = row.ratio_to_host.map(|r| r.to_string()).unwrap_or_default();
            let mut fields = vec![
                row.question.name().to_string(),
                row.environment.clone(),
                row.workload.clone(),
                row.scope.name().to_string(),
                row.start.map(|s| s.name()).unwrap_or("").to_string(),
                row.unit.suffix().to_string(),
            ];
            match &row.result {
                Outcome::Measured { summary: s, .. } => {
                    fields.push("measured".into());
                    fields.push(s.n.to_string());
                    for v in [s.median, s.p10, s.p90, s.mean, s.min, s.max, s.mad] {
                        fields.push(v.to_string());
                    }
                    fields.push(s.outliers.to_string());
                    fields.push(ratio);
                    fields.push(String::new());
                }
                Outcome::NotMeasured { reason } => {
                    fields.push("not_measured".into());
                    fields.extend(std::iter::repeat_n(String::new(), 10));
                    fields.push(reason.clone());
                }
            }
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))?;
        }
        Ok(())
    }
}

/// The exporter for a file name's extension (`.json` or `.csv`).
pub fn for_path(path: &std::path::Path) -> Option<Box<dyn Exporter>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Some(Box::new(JsonExporter)),
        Some("csv") => Some(Box::new(CsvExporter)),
        _ => None,
    }
}

/// Writes `results` to `path` with `exporter`, through a temporary file renamed into place, so
/// an interrupted run never leaves half a result file.
pub fn write_file(
    exporter: &dyn Exporter,
    results: &Results,
    path: &std::path::Path,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = io::BufWriter::new(std::fs::File::create(&tmp)?);
        exporter.write(results, &mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::sample_results;

    #[test]
    fn json_export_round_trips() {
        let results = sample_results();
        let mut buf = Vec::new();
        JsonExporter.write(&results, &mut buf).unwrap();
        let back: Results = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, results);
    }

    #[test]
    fn csv_has_one_line_per_row_with_reasons() {
        let mut results = sample_results();
        results.rows[2].result = Outcome::NotMeasured {
            reason: "needs \"root\", sorry".into(),
        };
        let mut buf = Vec::new();
        CsvExporter.write(&results, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + results.rows.len());
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert!(lines[1].starts_with("startup,host,true,whole_process,warm,us,measured,3,550,510,"));
        assert!(lines[1].ends_with(",0,1,"));
        assert!(lines[3].ends_with(",\"needs \"\"root\"\", sorry\""));
        // Every line has the same number of columns (the quoted comma is inside quotes).
        assert_eq!(lines[3].matches(',').count(), CSV_COLUMNS.len());
        assert_eq!(lines[1].matches(',').count(), CSV_COLUMNS.len() - 1);
    }

    #[test]
    fn write_file_replaces_atomically_and_picks_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let exporter = for_path(&path).unwrap();
        write_file(exporter.as_ref(), &sample_results(), &path).unwrap();
        let back: Results = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, sample_results());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(for_path(std::path::Path::new("r.txt")).is_none());
    }
}
