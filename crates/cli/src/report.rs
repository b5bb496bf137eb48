//! `isolab report`: turns one or more `isolab bench` results files into one HTML page — the
//! articles' claims with a verdict per machine, and the charts behind them.
//!
//! The work is in the `isolab-report` crate; this module only parses flags, finds criterion's
//! own report to link, and prints where the page went.

use std::path::PathBuf;

/// Flags of `isolab report`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  isolab bench --out results.json && isolab report results.json
      one machine: writes report/index.html
  isolab report pc01.json pc02.json pc03.json --out classroom
      a classroom: one claims table with a column per machine (named after the files)

What the page holds:
  - the machine's fingerprint (CPU, kernel, cgroups, which KVM, whether a guest's kernel
    mode runs natively) and, where it is emulated, what that changes and which rows it touches;
  - claims C1-C10 (docs/claims.md) with a verdict computed from the numbers: supported,
    refuted, depends (on what) or not measured (why), the figures behind it and the caveat;
  - charts: start-up per environment (every sample), where start-up time goes, memory and
    density, system-call and VM-exit costs, CPU and memory speed relative to the host,
    scaling with concurrent starts; each captioned with how it was measured;
  - every row with its note, and the observations (C5-C10) with their evidence.

Tools are only ever compared on whole-process rows (a launcher spawned and waited for, as a
user runs it); isolab's in-process engine rows show where the time goes.

The page is one self-contained file (inline SVG, no scripts, nothing from the network). When
`cargo bench` has produced criterion's own HTML reports (target/criterion/report/index.html),
the page links them.")]
pub struct ReportArgs {
    /// Results files written by `isolab bench --out FILE`; give several to compare machines.
    #[arg(value_name = "RESULTS.json", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory that receives index.html (created if missing).
    #[arg(long, value_name = "DIR", default_value = "report")]
    pub out: PathBuf,
}

/// Where criterion writes its HTML reports: `$CARGO_TARGET_DIR/criterion` or `target/criterion`
/// under the current directory.
fn criterion_report() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("criterion/report/index.html")
}

/// Writes the report and prints the path of its index.html.
pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let opts = isolab_report::Options {
        inputs: args.inputs,
        out_dir: args.out,
        criterion_report: Some(criterion_report()),
    };
    let index = isolab_report::write_report(&opts)?;
    eprintln!(
        "isolab report: {} results file(s) rendered in {:.2} s",
        opts.inputs.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", index.display());
    Ok(0)
}
