//! Horizontal bar charts: one bar per row at its median, a whisker from p10 to p90. Memory,
//! density, system-call and VM-exit costs, and ratios to the host.

use super::{category_label, colour, height_for, log_bounds, log_tick, svg};
use super::{Body, Figure, LABEL_AREA, WIDTH};
use crate::error::ReportError;
use crate::rows;
use isolab_bench::schema::{Question, Results, Row, Unit};
use plotters::prelude::*;

/// One bar.
struct Bar {
    label: String,
    environment: String,
    median: f64,
    p10: f64,
    p90: f64,
}

/// How to draw a set of bars.
struct Axis {
    chart: &'static str,
    desc: &'static str,
    log: bool,
    /// A vertical reference line (the host's 1.0).
    reference: Option<f64>,
    fmt: fn(f64) -> String,
}

fn bars_of(rows: &[&Row], scale: f64) -> Vec<Bar> {
    rows.iter()
        .filter_map(|r| {
            let (_, s) = rows::measured(r)?;
            Some(Bar {
                label: format!("{} · {}", r.environment, r.workload),
                environment: r.environment.clone(),
                median: s.median * scale,
                p10: s.p10 * scale,
                p90: s.p90 * scale,
            })
        })
        .collect()
}

fn draw(bars: &[Bar], axis: &Axis) -> Result<String, ReportError> {
    // Category axes count upwards: reversed, the first bar is drawn at the top.
    let bars: Vec<&Bar> = bars.iter().rev().collect();
    let bars = &bars[..];
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let n = bars.len();
    let values = bars
        .iter()
        .flat_map(|b| [b.p10, b.median, b.p90])
        .chain(axis.reference);
    let y_range = -0.5f64..(n as f64 - 0.5);
    svg(axis.chart, (WIDTH, height_for(n)), |root| {
        let builder = |root| {
            let mut b = ChartBuilder::on(root);
            b.margin(12)
                .x_label_area_size(42)
                .y_label_area_size(LABEL_AREA);
            b
        };
        let y_fmt = |y: &f64| category_label(&labels, *y);
        if axis.log {
            let (lo, hi) = log_bounds(values).unwrap_or((1.0, 10.0));
            let mut chart =
                builder(root).build_cartesian_2d((lo..hi).log_scale(), y_range.clone())?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 14))
                .y_labels(n + 1)
                .y_label_formatter(&y_fmt)
                .x_label_formatter(&|x| log_tick(*x, axis.fmt))
                .x_desc(axis.desc)
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            // A log axis has no zero: bars start at its left edge.
            draw_bars(&mut chart, bars, lo, axis.reference)
        } else {
            let hi = values.fold(0.0f64, f64::max).max(1e-9) * 1.1;
            let mut chart = builder(root).build_cartesian_2d(0f64..hi, y_range.clone())?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 14))
                .y_labels(n + 1)
                .y_label_formatter(&y_fmt)
                .x_label_formatter(&|x| (axis.fmt)(*x))
                .x_desc(axis.desc)
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            draw_bars(&mut chart, bars, 0.0, axis.reference)
        }
    })
}

fn draw_bars<'a, X>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    bars: &[&Bar],
    base: f64,
    reference: Option<f64>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    X: Ranged<ValueType = f64>,
{
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64;
        let c = colour(&b.environment, i);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(base, y - 0.32), (b.median, y + 0.32)],
            c.mix(0.8).filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(b.p10, y), (b.p90, y)],
            BLACK.stroke_width(2),
        )))?;
        for x in [b.p10, b.p90] {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, y - 0.15), (x, y + 0.15)],
                BLACK.stroke_width(2),
            )))?;
        }
    }
    if let Some(r) = reference {
        let top = bars.len() as f64 - 0.5;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(r, -0.5), (r, top)],
            RED.stroke_width(2),
        )))?;
    }
    Ok(())
}

fn figure(
    results: &Results,
    rows: Vec<&Row>,
    scale: f64,
    axis: Axis,
    meta: (&'static str, &'static str, &'static [&'static str]),
    caption: String,
    question: Question,
) -> Result<Figure, ReportError> {
    let bars = bars_of(&rows, scale);
    let body = if bars.is_empty() {
        Body::Absent(format!(
            "not measured here: {}",
            rows::absent_reason(results, question, "rows for this chart")
        ))
    } else {
        Body::Svg(draw(&bars, &axis)?)
    };
    let (id, title, claims) = meta;
    Ok(Figure {
        id,
        title,
        body,
        caption,
        claims,
    })
}

fn mib(v: f64) -> String {
    format!("{v:.0} MiB")
}

/// Launcher/VMM resident memory, the container's cgroup charge, the VMM's own overhead.
pub fn memory(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = rows::of(results, Question::Memory)
        .filter(|r| r.unit == Unit::Bytes && !r.workload.starts_with("density-"))
        .collect();
    let caption = format!(
        "Memory per instance, median with a p10–p90 whisker: peak RSS of each launcher process \
         tree (whole process, GNU time), the peak charge of a container's cgroup, the VMM's own \
         resident overhead, and the per-instance drop of MemAvailable during the density fill. \
         {} samples per row; each row's note (below the table) says exactly what it counts. \
         Informs C2 (\"containers are lighter\").",
        results.settings.samples_per_row
    );
    let axis = Axis {
        chart: "memory",
        desc: "MiB (median, whisker p10–p90)",
        log: false,
        reference: None,
        fmt: mib,
    };
    let meta = ("memory", "Memory per instance", &["C2"][..]);
    figure(
        results,
        rows,
        1.0 / f64::from(1 << 20),
        axis,
        meta,
        caption,
        Question::Memory,
    )
}

/// How many idle instances of each kind fit in the density budget.
pub fn density(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = rows::of(results, Question::Memory)
        .filter(|r| r.unit == Unit::Count && r.workload.starts_with("density-"))
        .collect();
    let caption = "Idle instances started one after another until the machine's MemAvailable had \
                   fallen by the budget named in the workload (e.g. density-1GiB): one fill per \
                   kind, so one sample per bar. MemAvailable sees what no per-process figure \
                   does (kernel memory, KVM's structures) but also anything else running on the \
                   machine. Informs C2 (\"far more containers than VMs fit\")."
        .to_string();
    let reason_rows: Vec<&Row> = rows.clone();
    let axis = Axis {
        chart: "density",
        desc: "instances that fit in the budget",
        log: false,
        reference: None,
        fmt: |v| format!("{v:.0}"),
    };
    let meta = (
        "density",
        "Density: instances in a fixed memory budget",
        &["C2"][..],
    );
    let mut fig = figure(results, rows, 1.0, axis, meta, caption, Question::Memory)?;
    if let (Body::Absent(_), Some(why)) =
        (&fig.body, reason_rows.iter().find_map(|r| rows::reason(r)))
    {
        fig.body = Body::Absent(format!("not measured here: {why}"));
    }
    Ok(fig)
}

fn ns(v: f64) -> String {
    rows::fmt_ns(v)
}

/// One system call (host, containers, guest) and one VM exit round trip, per operation.
pub fn syscall_and_exits(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = rows::of(results, Question::Syscall).collect();
    let caption = "Cost of one operation, median with p10–p90: a getpid system call on the host \
                   and inside containers (with and without a seccomp filter), and a guest → VMM \
                   → guest round trip through port I/O and MMIO exits. Each sample is the \
                   difference between a long and a short run of the same program (start-up \
                   cancels out), divided by the iterations; rows interleaved. Log scale. \
                   Informs C4 (\"containers reach the kernel with no overhead; VMs pay for the \
                   hypervisor\")."
        .to_string();
    let axis = Axis {
        chart: "syscall",
        desc: "per operation (log scale)",
        log: true,
        reference: None,
        fmt: ns,
    };
    let meta = ("syscall", "System-call and VM-exit costs", &["C4"][..]);
    figure(results, rows, 1.0, axis, meta, caption, Question::Syscall)
}

/// CPU loop and memory passes as time relative to the host, with the 1.0 line.
pub fn ratios(results: &Results) -> Result<Figure, ReportError> {
    let rows: Vec<&Row> = rows::of(results, Question::Cpu)
        .filter(|r| r.environment != "host" && r.ratio_to_host.is_some())
        .collect();
    // Time relative to the host for every row: a bandwidth ratio is inverted, so that > 1
    // always means slower than the host.
    let bars: Vec<Bar> = rows
        .iter()
        .filter_map(|r| {
            let ratio = r.ratio_to_host?;
            let (_, s) = rows::measured(r)?;
            let host = s.median / ratio;
            let rel = |v: f64| {
                if r.unit.higher_is_better() {
                    host / v
                } else {
                    v / host
                }
            };
            let (a, b) = (rel(s.p10), rel(s.p90));
            Some(Bar {
                label: format!("{} · {}", r.environment, r.workload),
                environment: r.environment.clone(),
                median: rel(s.median),
                p10: a.min(b),
                p90: a.max(b),
            })
        })
        .collect();
    let caption = "The same CPU loop and memory passes (a read/write pass, the STREAM triad) in \
                   each environment, as time relative to the host's median: 1.0 (the red line) \
                   is bare-metal speed, 2.0 takes twice as long. Bandwidth rows are inverted so \
                   every bar reads the same way. Whisker: p10–p90 of the row over the host's \
                   median. Identical program bytes everywhere, rows interleaved. Informs C3 \
                   (\"near bare-metal performance\")."
        .to_string();
    let body = if bars.is_empty() {
        Body::Absent(format!(
            "not measured here: {}",
            rows::absent_reason(results, Question::Cpu, "rows with a ratio to the host")
        ))
    } else {
        let axis = Axis {
            chart: "ratios",
            desc: "time relative to the host (1.0 = host)",
            log: false,
            reference: Some(1.0),
            fmt: |v| format!("{v:.1}×"),
        };
        Body::Svg(draw(&bars, &axis)?)
    };
    Ok(Figure {
        id: "ratios",
        title: "CPU and memory speed relative to the host",
        body,
        caption,
        claims: &["C3"],
    })
}
