//! Start-up: every whole-process sample per environment, and where an in-process start's time
//! goes, phase by phase.

use super::{
    category_label, colour, grouped, height_for, log_bounds, log_tick, series_colour, svg,
};
use super::{Body, Figure, LABEL_AREA, WIDTH};
use crate::error::ReportError;
use crate::rows::{self, Scope};
use isolab_bench::schema::{Question, Results, Row};
use plotters::prelude::*;

/// Every sample of every whole-process start-up row on a log axis, the median as a bar.
pub fn startup(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = grouped(
        rows::of(results, Question::Startup)
            .filter(|r| rows::scope(r) == Scope::WholeProcess && rows::measured(r).is_some()),
    );
    let samples: usize = rows
        .iter()
        .filter_map(|r| rows::measured(r))
        .map(|(s, _)| s.len())
        .sum();
    let s = &results.settings;
    let caption = format!(
        "Each dot is one start: the launcher spawned as a process of its own, its trivial \
         workload run (busybox `true`; the stub guest's immediate exit; a Linux boot to its \
         command line), and the process waited for — what a user typing the command sees. \
         Whole-process rows only ({} rows, {samples} samples, one run). Warm starts are \
         interleaved back to back in rounds whose order is shuffled every round (seed {}); cold \
         starts each follow {} ms of idle time, as a single `docker run` from a shell does. The \
         bar is the median; log scale. Informs C1 (\"containers start in seconds, VMs in \
         minutes\").",
        rows.len(),
        s.shuffle_seed,
        s.cold_gap_ms
    );
    let body = if rows.is_empty() {
        Body::Absent(format!(
            "not measured here: no whole-process start-up row has samples ({})",
            rows::absent_reason(results, Question::Startup, "whole-process start-up rows")
        ))
    } else {
        Body::Svg(draw_strip(&rows)?)
    };
    Ok(Figure {
        id: "startup",
        title: "Start-up time per environment (whole process)",
        body,
        caption,
        claims: &["C1"],
    })
}

fn row_label(r: &Row) -> String {
    let mut label = r.environment.clone();
    if r.workload != "true" {
        label.push_str(&format!(" · {}", r.workload));
    }
    if let Some(start) = rows::start_label(r) {
        label.push_str(&format!(" ({start})"));
    }
    label
}

fn draw_strip(rows: &[&Row]) -> Result<String, ReportError> {
    // Category axes count upwards: reversed, the first row is drawn at the top.
    let rows: Vec<&Row> = rows.iter().rev().copied().collect();
    let labels: Vec<String> = rows.iter().map(|r| row_label(r)).collect();
    let all_ms = rows
        .iter()
        .filter_map(|r| rows::measured(r))
        .flat_map(|(s, _)| s.iter().map(|us| us / 1000.0));
    let (lo, hi) = log_bounds(all_ms).unwrap_or((0.1, 10.0));
    let n = rows.len();
    svg("startup", (WIDTH, height_for(n)), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(LABEL_AREA)
            .build_cartesian_2d((lo..hi).log_scale(), -0.5f64..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .y_labels(n + 1)
            .y_label_formatter(&|y| category_label(&labels, *y))
            .x_label_formatter(&|x| log_tick(*x, |v| format!("{v} ms")))
            .x_desc("start → exit, milliseconds (log scale)")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, row) in rows.iter().enumerate() {
            let Some((samples, summary)) = rows::measured(row) else {
                continue;
            };
            let c = colour(&row.environment, i);
            let y = i as f64;
            chart.draw_series(samples.iter().enumerate().map(|(k, us)| {
                // Spread the dots vertically (deterministically) so equal values stay visible.
                let jitter = ((k * 37) % 17) as f64 / 17.0 * 0.5 - 0.25;
                Circle::new((us / 1000.0, y + jitter), 3, c.mix(0.55).filled())
            }))?;
            let m = summary.median / 1000.0;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(m, y - 0.38), (m, y + 0.38)],
                BLACK.stroke_width(3),
            )))?;
        }
        Ok(())
    })
}

/// The phases that add up to a start, per engine: isolab's container runtime and its VMM.
/// A phase the file lacks counts 0; "other" is the rest of the median total.
const CONTAINER_PHASES: [(&str, &str); 7] = [
    ("cgroup_us", "cgroup"),
    ("clone_us", "clone (namespaces)"),
    ("network_us", "network"),
    ("rootfs_us", "rootfs (mounts, pivot_root)"),
    ("exec_setup_us", "exec setup (caps, seccomp…)"),
    ("run_us", "workload runs"),
    ("cleanup_us", "cleanup"),
];
const VM_PHASES: [(&str, &str); 6] = [
    ("create_vm_us", "create VM"),
    ("memory_us", "guest memory"),
    ("irqchip_us", "irqchip + PIT"),
    ("vcpus_us", "vCPUs"),
    ("load_us", "load guest"),
    ("teardown_us", "teardown"),
];

/// The stacked segments of one row: (legend name, µs), in start order.
fn segments(row: &Row) -> Vec<(String, f64)> {
    let p = &row.phases_median_us;
    let get = |k: &str| p.get(k).copied().unwrap_or(0.0).max(0.0);
    let mut segs: Vec<(String, f64)> = if p.contains_key("create_vm_us") {
        // Teardown comes last, after the guest's own run.
        let (teardown, setup) = VM_PHASES.split_last().unwrap_or((&("", ""), &[]));
        let mut v: Vec<(String, f64)> = setup
            .iter()
            .map(|(k, name)| (name.to_string(), get(k)))
            .collect();
        let guest = (get("exit_at_us") - get("first_run_at_us")).max(0.0);
        v.push(("guest runs (KVM_RUN → exit)".into(), guest));
        v.push((teardown.1.to_string(), get(teardown.0)));
        v
    } else {
        CONTAINER_PHASES
            .iter()
            .map(|(k, name)| (name.to_string(), get(k)))
            .collect()
    };
    let sum: f64 = segs.iter().map(|(_, v)| v).sum();
    let total = get("total_us");
    segs.push(("other (between phases)".into(), (total - sum).max(0.0)));
    segs
}

/// Stacked phases of every in-process start-up row that reports them.
pub fn phases(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = grouped(rows::of(results, Question::Startup).filter(|r| {
        rows::scope(r) == Scope::InProcess
            && rows::measured(r).is_some()
            && r.phases_median_us.contains_key("total_us")
    }));
    let n_samples = rows
        .iter()
        .filter_map(|r| rows::measured(r))
        .map(|(_, s)| s.n)
        .max()
        .unwrap_or(0);
    let caption = format!(
        "Where the start-up time goes: isolab's container runtime and its VMM called as a library \
         inside the bench process (in-process, not a launch a user sees — no exec of the CLI, no \
         argument parsing), each phase the median of its {n_samples} samples, rows interleaved. \
         Medians of parts need not add up to the median of the whole: \"other\" is the rest of \
         the median total. Informs C1: which steps make a container or a microVM slow to start."
    );
    let body = if rows.is_empty() {
        Body::Absent(format!(
            "not measured here: no in-process start-up row with a phase breakdown ({})",
            rows::absent_reason(results, Question::Startup, "phase breakdowns")
        ))
    } else {
        Body::Svg(draw_stacked(&rows)?)
    };
    Ok(Figure {
        id: "phases",
        title: "Where the start-up time goes (in-process breakdown)",
        body,
        caption,
        claims: &["C1"],
    })
}

fn draw_stacked(rows: &[&Row]) -> Result<String, ReportError> {
    let rows: Vec<&Row> = rows.iter().rev().copied().collect();
    let labels: Vec<String> = rows.iter().map(|r| row_label(r)).collect();
    let stacks: Vec<Vec<(String, f64)>> = rows.iter().map(|r| segments(r)).collect();
    let mut names: Vec<String> = Vec::new();
    for (name, _) in stacks.iter().rev().flatten() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let max_ms = stacks
        .iter()
        .map(|s| s.iter().map(|(_, v)| v).sum::<f64>() / 1000.0)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.05;
    let n = rows.len();
    let legend_rows = names.len().div_ceil(3) as u32;
    svg(
        "phases",
        (WIDTH, height_for(n) + 22 * legend_rows),
        |root| {
            let (plot, legend) = root.split_vertically(height_for(n));
            let mut chart = ChartBuilder::on(&plot)
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(LABEL_AREA)
                .build_cartesian_2d(0f64..max_ms, -0.5f64..(n as f64 - 0.5))?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 14))
                .y_labels(n + 1)
                .y_label_formatter(&|y| category_label(&labels, *y))
                .x_desc("milliseconds (medians per phase, stacked)")
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (i, stack) in stacks.iter().enumerate() {
                let y = i as f64;
                let mut x0 = 0.0;
                for (name, us) in stack {
                    let x1 = x0 + us / 1000.0;
                    let k = names.iter().position(|n| n == name).unwrap_or(0);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, y - 0.35), (x1, y + 0.35)],
                        series_colour(k).filled(),
                    )))?;
                    x0 = x1;
                }
            }
            for (k, name) in names.iter().enumerate() {
                let x = 20 + (k % 3) as i32 * 310;
                let y = 4 + (k / 3) as i32 * 22;
                legend.draw(&Rectangle::new(
                    [(x, y), (x + 14, y + 14)],
                    series_colour(k).filled(),
                ))?;
                legend.draw(&Text::new(
                    name.clone(),
                    (x + 20, y + 1),
                    ("sans-serif", 14).into_font(),
                ))?;
            }
            Ok(())
        },
    )
}
