//! isolab-report: results files in, one self-contained HTML page out.
//!
//! The page answers the articles' claims (C1–C10, listed in `docs/claims.md`) with the numbers
//! of the machine(s) the results were taken on. Read in this order: [`load`] (which files are
//! accepted), [`rows`] (which rows are whole-process launches and which an in-process
//! breakdown), [`verdict`] (the claims judged, no drawing), [`charts`] (the drawings, no
//! judging), [`html`] (the page).
//!
//! Nothing here measures: a report can be drawn on any machine from files taken on others, and
//! a classroom's files merge into one page with a column per machine.

pub mod charts;
pub mod claims;
pub mod error;
pub mod html;
pub mod load;
pub mod rows;
pub mod verdict;

pub use error::ReportError;

use std::path::{Component, Path, PathBuf};

/// What to render, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// One results file per machine, in column order.
    pub inputs: Vec<PathBuf>,
    /// The directory that receives `index.html` (created if missing).
    pub out_dir: PathBuf,
    /// criterion's `report/index.html`, linked from the page when it exists.
    pub criterion_report: Option<PathBuf>,
}

/// Checks every input and the output directory, then writes `index.html`; returns its path.
///
/// All checks run before any drawing: a bad file or an unwritable directory fails fast and
/// leaves no page behind.
pub fn write_report(opts: &Options) -> Result<PathBuf, ReportError> {
    let machines = load::load_all(&opts.inputs)?;
    load::prepare_out_dir(&opts.out_dir)?;
    let criterion_link = opts
        .criterion_report
        .as_deref()
        .filter(|p| p.is_file())
        .map(|p| link_from(&opts.out_dir, p));
    let page = html::Page {
        judgements: machines
            .iter()
            .map(|m| verdict::judge_all(&m.results))
            .collect(),
        figures: machines
            .iter()
            .map(|m| charts::all(&m.results))
            .collect::<Result<_, _>>()?,
        machines: &machines,
        criterion_link,
    };
    let text = html::render(&page);
    let index = opts.out_dir.join("index.html");
    let partial = opts.out_dir.join(".index.html.partial");
    std::fs::write(&partial, text).map_err(|source| ReportError::Write {
        path: partial.clone(),
        source,
    })?;
    std::fs::rename(&partial, &index).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        ReportError::Write {
            path: index.clone(),
            source,
        }
    })?;
    Ok(index)
}

/// A link from a page in `dir` to `target`: relative when both resolve, else absolute.
fn link_from(dir: &Path, target: &Path) -> String {
    let (Ok(dir), Ok(target)) = (dir.canonicalize(), target.canonicalize()) else {
        return target.display().to_string();
    };
    let d: Vec<Component> = dir.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = d.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..d.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    rel.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::link_from;

    #[test]
    fn criterion_link_is_relative_to_the_page() {
        let root = tempfile::tempdir().unwrap();
        let report = root.path().join("reports/demo");
        let crit = root.path().join("target/criterion/report/index.html");
        std::fs::create_dir_all(&report).unwrap();
        std::fs::create_dir_all(crit.parent().unwrap()).unwrap();
        std::fs::write(&crit, "x").unwrap();
        assert_eq!(
            link_from(&report, &crit),
            "../../target/criterion/report/index.html"
        );
    }
}
