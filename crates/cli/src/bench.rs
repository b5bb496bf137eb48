//! `isolab bench`: the whole comparison in one run — host vs isolab containers vs the peer
//! runtimes vs isolab microVMs — written to one JSON file (and optionally CSV) with every raw
//! sample, summary statistics, ratios to the host and a fingerprint of the machine.
//!
//! The engine is the `isolab-bench` crate; this module only parses flags, writes files and
//! prints the summary table.

use anyhow::{bail, Context};
use isolab_bench::export::{self, CsvExporter, JsonExporter};
use isolab_bench::{Finding, Outcome, Question, Results, RunConfig, Scope, Unit};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Flags of `isolab bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Few samples and only the fast rows (under 2 minutes).
    #[arg(long)]
    pub quick: bool,
    /// Only these questions, comma-separated: startup, memory, syscall, cpu, scaling, and
    /// observe (the C5–C10 checks: kernel identity, root through a bind mount, namespaces,
    /// limits enforced, copy-on-write layers, chroot escape).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_only)]
    pub only: Vec<Only>,
    /// Where to write the JSON results.
    #[arg(long, value_name = "FILE", default_value = "isolab-bench.json")]
    pub out: PathBuf,
    /// Also write one CSV line per row here.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Samples per row (default: 15 for startup with --quick, 60 without; 5/15 otherwise).
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// No progress line on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Memory budget the density rows fill with idle containers and idle microVMs: how far
    /// the system's MemAvailable may fall (K, M or G suffix).
    #[arg(long, value_name = "SIZE", default_value = "1G")]
    pub density_budget: String,
    /// Seconds each kind's density fill may keep starting instances.
    #[arg(long, value_name = "SECONDS", default_value_t = 150)]
    pub density_seconds: u64,
    /// Seed for the order the environments run in within each interleaved round (shuffled
    /// every round so no row always comes first). Default: a fresh seed, printed and recorded
    /// in the results; give it again to replay the same orders.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Idle milliseconds before each cold start-up sample (the cold rows show what one start
    /// on a quiet machine costs; the warm rows, starts back to back).
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub cold_gap_ms: u64,
}

/// One entry of `--only`: a timed question, or the observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// A question whose rows are timings.
    Question(Question),
    /// The C5–C10 checks.
    Observe,
}

fn parse_only(s: &str) -> Result<Only, String> {
    if s.trim() == isolab_bench::runner::OBSERVE {
        return Ok(Only::Observe);
    }
    s.parse::<Question>()
        .map(Only::Question)
        .map_err(|e| format!("{e}, observe"))
}

/// Runs the bench; returns the process exit code (0: the run finished and its file is written,
/// whatever rows could not be measured here — those are in the file with their reasons).
pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    if args.samples == Some(0) {
        bail!("--samples must be at least 1");
    }
    let density_budget_bytes = isolab_microvm::parse_memory_size(&args.density_budget)
        .with_context(|| format!("--density-budget {:?}", args.density_budget))?;
    if density_budget_bytes < 1 << 20 {
        bail!(
            "--density-budget {} is too small: give at least 1M (e.g. 1G)",
            args.density_budget
        );
    }
    if args.density_seconds == 0 {
        bail!("--density-seconds must be at least 1");
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "isolab bench: not root: container rows will be recorded as not measured (run with sudo for them)"
        );
    }
    let observe = args.only.is_empty() || args.only.contains(&Only::Observe);
    let questions = if args.only.is_empty() {
        Question::ALL.to_vec()
    } else {
        let mut qs = Vec::new();
        for only in args.only {
            if let Only::Question(q) = only {
                if !qs.contains(&q) {
                    qs.push(q);
                }
            }
        }
        qs
    };
    let config = RunConfig {
        quick: args.quick,
        questions,
        samples: args.samples,
        isolab_exe: std::env::current_exe().ok(),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        density_budget_bytes,
        density_time_limit: std::time::Duration::from_secs(args.density_seconds),
        seed: args.seed,
        cold_gap: std::time::Duration::from_millis(args.cold_gap_ms),
        observe,
    };
    let results = isolab_bench::run(&config)?;
    export::write_file(&JsonExporter, &results, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(csv) = &args.csv {
        export::write_file(&CsvExporter, &results, csv)
            .with_context(|| format!("writing {}", csv.display()))?;
    }
    print_table(&results);
    println!(
        "\n{} rows in {:.1} s; results written to {}{}",
        results.rows.len(),
        results.duration_s,
        args.out.display(),
        args.csv
            .as_ref()
            .map(|c| format!(" and {}", c.display()))
            .unwrap_or_default()
    );
    Ok(0)
}

/// A figure in a readable unit: ms for start-up, ns, MiB, GB/s.
fn human(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Us => format!("{:.2} ms", value / 1000.0),
        Unit::Ns => format!("{value:.1} ns"),
        Unit::Bytes => format!("{:.1} MiB", value / (1024.0 * 1024.0)),
        Unit::BytesPerS => format!("{:.2} GB/s", value / 1e9),
        Unit::Count => format!("{value:.0}"),
    }
}

fn print_table(results: &Results) {
    let fp = &results.fingerprint;
    println!(
        "{} × {} cores, Linux {}, cgroups {} (rcu_expedited {}, favordynmods {}), KVM {} \
         (guest CPL0 native: {})",
        fp.cpu_model,
        fp.cpu_cores,
        fp.kernel_release,
        fp.cgroup_mode,
        match fp.rcu_expedited {
            Some(true) => "1",
            Some(false) => "0",
            None => "unknown",
        },
        if fp.cgroup_favordynmods { "on" } else { "off" },
        fp.kvm_module,
        match fp.guest_cpl0_native {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        }
    );
    println!(
        "order shuffled every round with seed {} (--seed to replay); cold rows: {} ms idle \
         before each start; scope: proc = a whole process spawned and waited for, lib = \
         isolab's library in the bench process (where the time goes, not a launch)",
        results.settings.shuffle_seed, results.settings.cold_gap_ms
    );
    let mut last: Option<Question> = None;
    let mut last_note: Option<&str> = None;
    for row in &results.rows {
        if last != Some(row.question) {
            println!(
                "\n{:<10} {:<34} {:<22} {:<5} {:<4} {:>11} {:>11} {:>11} {:>7}",
                row.question.name(),
                "environment",
                "workload",
                "start",
                "scope",
                "median",
                "p10",
                "p90",
                "×host"
            );
            last = Some(row.question);
        }
        let start = row.start.map(|s| s.name()).unwrap_or("");
        let scope = match row.scope {
            Scope::WholeProcess => "proc",
            Scope::InProcess => "lib",
        };
        let lead = format!(
            "{:<10} {:<34} {:<22} {:<5} {:<4}",
            "", row.environment, row.workload, start, scope
        );
        match &row.result {
            Outcome::Measured { summary, .. } => println!(
                "{lead} {:>11} {:>11} {:>11} {:>7}",
                human(summary.median, row.unit),
                human(summary.p10, row.unit),
                human(summary.p90, row.unit),
                row.ratio_to_host
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into())
            ),
            Outcome::NotMeasured { reason } => println!("{lead} not measured: {reason}"),
        }
        // A row's cold twin carries the same note: print it once.
        if let Some(note) = row.note.as_deref().filter(|n| Some(*n) != last_note) {
            println!("{:<11}  └ {note}", "");
        }
        last_note = row.note.as_deref();
    }
    print_observations(results);
}

fn print_observations(results: &Results) {
    if results.observations.is_empty() {
        return;
    }
    println!(
        "\n{:<5} {:<34} {:<30} outcome",
        "claim", "check", "environment"
    );
    for o in &results.observations {
        let outcome = match &o.outcome {
            Finding::Observed { holds: true } => "yes".to_string(),
            Finding::Observed { holds: false } => "no".to_string(),
            Finding::NotMeasured { reason } => format!("not measured: {reason}"),
        };
        println!(
            "{:<5} {:<34} {:<30} {outcome}",
            format!("{:?}", o.claim),
            o.check,
            o.environment
        );
        println!("{:<5}  └ {}", "", o.statement);
    }
}
