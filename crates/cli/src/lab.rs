//! `isolab lab …`: the classroom labs — one rung of the isolation ladder each, run for real on
//! this machine, each checking the observation it predicts.

use anyhow::{bail, Context, Result};
use isolab_labs::{self as labs, Lab, LabResult, Options, Verdict};
use std::path::PathBuf;

/// The `isolab lab` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// List the labs: number, name, what it shows, the claims it tests, whether it needs root.
    #[command(alias = "ls")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run labs: each explains what to look for, runs the commands a student could type, and
    /// checks what they showed (PASS, FAIL, or SKIP with the reason this host cannot).
    ///
    /// Examples:
    ///   isolab lab run chroot            # by name
    ///   isolab lab run 9                 # by number
    ///   isolab lab run --all             # the whole ladder, with a summary
    ///   isolab lab run 6 --explain       # only the background, run nothing
    ///   isolab lab run --all --json alice.json   # results for grading
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
}

/// Flags of `isolab lab run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Lab names or numbers (see `isolab lab list`).
    #[arg(
        value_name = "NAME|NUMBER",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    labs: Vec<String>,
    /// Run every lab, in order.
    #[arg(long)]
    all: bool,
    /// Print the background of each lab (the kernel concept, what to look for) and run nothing.
    #[arg(long)]
    explain: bool,
    /// Write the results as JSON to FILE, or to stdout with no FILE (then nothing else is
    /// printed there).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

/// Runs one `isolab lab` subcommand; returns the exit code (1 when a lab failed).
pub fn run(cmd: LabCommand) -> Result<u8> {
    match cmd {
        LabCommand::List { json } => list(json),
        LabCommand::Run(args) => run_labs(args),
    }
}

fn list(json: bool) -> Result<u8> {
    if json {
        let rows: Vec<_> = labs::all()
            .iter()
            .map(|l| {
                serde_json::json!({
                    "number": l.number,
                    "name": l.name,
                    "summary": l.summary,
                    "claims": l.claims,
                    "needs_root": l.needs_root,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!(
        "{:>2}  {:<18} {:<8} {:<5} WHAT IT SHOWS",
        "#", "NAME", "CLAIMS", "ROOT"
    );
    for l in labs::all() {
        println!(
            "{:>2}  {:<18} {:<8} {:<5} {}",
            l.number,
            l.name,
            l.claims.join(","),
            if l.needs_root { "yes" } else { "no" },
            l.summary
        );
    }
    println!("\nRun one with `isolab lab run NAME|NUMBER`, all with `isolab lab run --all`.");
    println!(
        "Labs with ROOT \"no\" run as an ordinary user too (rootless, through a user namespace)."
    );
    Ok(0)
}

fn run_labs(args: RunArgs) -> Result<u8> {
    let selected: Vec<&'static Lab> = if args.all {
        labs::all().iter().collect()
    } else {
        args.labs
            .iter()
            .map(|q| labs::find(q))
            .collect::<Result<_, _>>()?
    };
    if args.explain {
        for lab in selected {
            labs::print_header(lab);
            println!("{}\n", labs::indent(lab.background));
        }
        return Ok(0);
    }
    let to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    let options = Options {
        isolab: std::env::current_exe().context("finding the isolab binary to run the steps")?,
        print: !to_stdout,
    };
    labs::interrupt::install();
    let mut results = Vec::new();
    for lab in selected {
        let result = labs::run(lab, &options);
        if !options.print {
            // stdout carries the JSON: progress goes to stderr.
            eprintln!(
                "lab {} {}: {} ({:.1} s)",
                result.number,
                result.name,
                result.verdict.word(),
                result.duration_ms / 1e3
            );
        }
        results.push(result);
        if labs::interrupt::interrupted() {
            break;
        }
    }
    if options.print && results.len() > 1 {
        print_summary(&results);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        if to_stdout {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if labs::interrupt::interrupted() {
        eprintln!("isolab: interrupted; everything the labs made has been removed");
        return Ok(130);
    }
    if results.iter().any(|r| r.verdict == Verdict::Fail) {
        return Ok(1);
    }
    if results.is_empty() {
        bail!("no lab selected");
    }
    Ok(0)
}

fn print_summary(results: &[LabResult]) {
    println!("━━ Summary");
    for r in results {
        let skipped = r
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Skip)
            .count();
        println!(
            "  {:>2} {:<18} {}  {:>6.1} s{}",
            r.number,
            r.name,
            r.verdict.word(),
            r.duration_ms / 1e3,
            if skipped > 0 && r.verdict != Verdict::Skip {
                format!("  ({skipped} part(s) skipped)")
            } else {
                String::new()
            }
        );
    }
    let count = |v| results.iter().filter(|r| r.verdict == v).count();
    println!(
        "  {} passed, {} failed, {} skipped",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip)
    );
}
