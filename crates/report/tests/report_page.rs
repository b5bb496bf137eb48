//! A report from the fixture results files: every chart drawn, every claim row present, the
//! machines merged into columns, the emulation note where it applies, and bad input refused
//! before anything is written.

use isolab_report::charts::FIGURE_IDS;
use isolab_report::{write_report, Options, ReportError};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn render(inputs: &[&str], out: &Path) -> Result<String, ReportError> {
    let opts = Options {
        inputs: inputs.iter().map(|n| fixture(n)).collect(),
        out_dir: out.to_path_buf(),
        criterion_report: None,
    };
    let index = write_report(&opts)?;
    assert_eq!(index, out.join("index.html"));
    Ok(std::fs::read_to_string(index).unwrap())
}

/// The HTML of one `<figure data-chart="ID">` element.
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-chart=\"{id}\""))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let end = html[start..].find("</figure>").unwrap() + start;
    &html[start..end]
}

#[test]
fn fixture_report_has_every_chart_and_every_claim() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let html = render(&["results-pvm.json"], dir.path()).unwrap();
    eprintln!("rendered in {:.3} s", t.elapsed().as_secs_f64());
    for id in FIGURE_IDS {
        let fig = figure(&html, id);
        assert!(fig.contains("<svg"), "chart {id} not drawn:\n{fig}");
        assert!(fig.contains("<figcaption>"), "chart {id} has no caption");
        assert!(
            fig.matches("<circle").count()
                + fig.matches("<rect").count()
                + fig.matches("<polyline").count()
                > 3,
            "chart {id} has almost nothing in it"
        );
    }
    for n in 1..=10 {
        assert!(
            html.contains(&format!("data-claim=\"C{n}\"")),
            "claim C{n} missing"
        );
    }
    // Self-contained: no scripts, nothing fetched.
    assert!(!html.contains("<script"));
    for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(attr), "the page loads {attr}…");
    }
    // The fingerprint heads the page, the emulation warning follows it.
    let fp = html.find("id=\"fingerprint\"").unwrap();
    let warn = html.find("id=\"emulated-kernel-mode\"").unwrap();
    let claims = html.find("id=\"claims\"").unwrap();
    assert!(fp < warn && warn < claims);
    assert!(html.contains("isolab-cli-microvm-linux</b>: linux-to-command-line (startup)"));
}

#[test]
fn charts_say_how_they_were_measured() {
    let dir = tempfile::tempdir().unwrap();
    let html = render(&["results-pvm.json"], dir.path()).unwrap();
    assert!(figure(&html, "startup").contains("Whole-process rows only"));
    assert!(figure(&html, "startup").contains("seed 1234"));
    assert!(figure(&html, "phases").contains("in-process"));
    // The in-process engine rows are never on the whole-process chart.
    assert!(!figure(&html, "startup").contains("isolab-engine"));
    assert!(figure(&html, "ratios").contains("1.0 (the red line)"));
    assert!(figure(&html, "scaling-latency").contains("p10–p90"));
}

#[test]
fn machines_merge_into_columns_and_only_pvm_gets_the_warning() {
    let dir = tempfile::tempdir().unwrap();
    let html = render(&["results-pvm.json", "results-vtx.json"], dir.path()).unwrap();
    let table = &html[html.find("id=\"claims-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(table.contains("<th>results-pvm</th><th>results-vtx</th>"));
    // One verdict cell per machine in every claim row.
    for row in table.split("<tr id=\"claim-").skip(1) {
        assert_eq!(row.matches("class=\"v v-").count(), 2, "{row}");
    }
    assert_eq!(html.matches("class=\"warn\"").count(), 1);
    assert!(html.contains("results-pvm: guest kernel mode is emulated"));
    // Charts per machine.
    assert_eq!(html.matches("data-chart=\"startup\"").count(), 2);
}

#[test]
fn absent_data_says_not_measured_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("results-pvm.json")).unwrap())
            .unwrap();
    v["rows"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["question"] != "scaling");
    let path = dir.path().join("no-scaling.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let out = dir.path().join("out");
    let opts = Options {
        inputs: vec![path],
        out_dir: out,
        criterion_report: None,
    };
    let html = std::fs::read_to_string(write_report(&opts).unwrap()).unwrap();
    let fig = figure(&html, "scaling-latency");
    assert!(fig.contains("not measured here"), "{fig}");
    assert!(!fig.contains("<svg"));
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "this is not json").unwrap();
    let old = dir.path().join("old.json");
    std::fs::write(&old, r#"{"schema_version": 1, "rows": []}"#).unwrap();
    let out = dir.path().join("never-created");
    let try_with = |inputs: Vec<PathBuf>, out: &Path| {
        write_report(&Options {
            inputs,
            out_dir: out.to_path_buf(),
            criterion_report: None,
        })
        .unwrap_err()
    };
    let e = try_with(vec![fixture("results-pvm.json"), garbage], &out);
    assert!(matches!(e, ReportError::NotResults { .. }), "{e}");
    let e = try_with(vec![old], &out);
    assert!(e.to_string().contains("schema_version 1"), "{e}");
    let e = try_with(vec![dir.path().join("missing.json")], &out);
    assert!(matches!(e, ReportError::Read { .. }), "{e}");
    assert!(!out.exists(), "a refused report left {out:?} behind");
    // An --out that cannot be a directory: a regular file in the way.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = try_with(vec![fixture("results-pvm.json")], &file.join("report"));
    assert!(matches!(e, ReportError::OutputDir { .. }), "{e}");
    assert!(e.to_string().contains("--out DIR"));
}
