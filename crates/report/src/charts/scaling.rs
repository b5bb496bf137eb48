//! Scaling: start latency and memory with 1, 2, 4, 8 instances started at once, one line per
//! environment, the p10–p90 band around it.

use super::{colour, svg, Body, Figure, WIDTH};
use crate::error::ReportError;
use crate::rows;
use isolab_bench::schema::{Question, Results, Unit};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// One environment's curve: (instances, median, p10, p90) in the chart's unit.
type Curve = Vec<(f64, f64, f64, f64)>;

/// The instance count of a scaling workload such as `true-x4` or `peak-memory-x8`.
fn instances(workload: &str) -> Option<f64> {
    workload
        .rsplit_once("-x")?
        .1
        .parse::<u32>()
        .ok()
        .map(f64::from)
}

fn curves(results: &Results, unit: Unit, scale: f64) -> BTreeMap<String, Curve> {
    let mut out: BTreeMap<String, Curve> = BTreeMap::new();
    for r in rows::of(results, Question::Scaling).filter(|r| r.unit == unit) {
        let (Some(n), Some((_, s))) = (instances(&r.workload), rows::measured(r)) else {
            continue;
        };
        out.entry(r.environment.clone()).or_default().push((
            n,
            s.median * scale,
            s.p10 * scale,
            s.p90 * scale,
        ));
    }
    for c in out.values_mut() {
        c.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The two scaling figures: latency, then memory.
pub fn scaling(results: &Results) -> Result<[Figure; 2], ReportError> {
    let latency = curves(results, Unit::Us, 1e-3);
    let memory = curves(results, Unit::Bytes, 1.0 / f64::from(1 << 20));
    let absent = |what| {
        Body::Absent(format!(
            "not measured here: {}",
            rows::absent_reason(results, Question::Scaling, what)
        ))
    };
    let lat_body = if latency.is_empty() {
        absent("latency rows")
    } else {
        Body::Svg(draw(
            "scaling-latency",
            &latency,
            "ms per instance, launch → exit",
        )?)
    };
    let mem_body = if memory.is_empty() {
        absent("memory rows")
    } else {
        Body::Svg(draw(
            "scaling-memory",
            &memory,
            "MiB, all instances together",
        )?)
    };
    let samples = results.settings.samples_per_row;
    Ok([
        Figure {
            id: "scaling-latency",
            title: "Start latency with N instances started at once",
            body: lat_body,
            caption: format!(
                "N instances released together by a barrier; a sample is the mean launch → exit \
                 time of the N, {samples} rounds per point; the line is the median, the band \
                 p10–p90. Flat means the start path scales across cores; rising means the \
                 instances queue on a shared lock or on the CPUs. Read each row's note for its \
                 scope (in-process library or whole process). Informs C1 and C2 under load."
            ),
            claims: &["C1", "C2"],
        },
        Figure {
            id: "scaling-memory",
            title: "Peak memory with N instances at once",
            body: mem_body,
            caption: format!(
                "How far memory rose with N instances running at once (the sum of the \
                 containers' cgroup peaks plus the launcher's growth; for microVMs the VMM \
                 process's resident growth, without KVM's kernel-side memory), {samples} rounds \
                 per point; line median, band p10–p90. Informs C2."
            ),
            claims: &["C2"],
        },
    ])
}

fn draw(
    chart: &'static str,
    curves: &BTreeMap<String, Curve>,
    desc: &'static str,
) -> Result<String, ReportError> {
    let max_n = curves
        .values()
        .flatten()
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    let max_y = curves
        .values()
        .flatten()
        .map(|p| p.3.max(p.1))
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.1;
    svg(chart, (WIDTH, 440), |root| {
        let mut c = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5f64..max_n + 0.5, 0f64..max_y)?;
        c.configure_mesh()
            .label_style(("sans-serif", 14))
            .x_desc("instances started at once")
            .y_desc(desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (env, curve)) in curves.iter().enumerate() {
            let col = colour(env, i);
            let mut band: Vec<(f64, f64)> = curve.iter().map(|p| (p.0, p.3)).collect();
            band.extend(curve.iter().rev().map(|p| (p.0, p.2)));
            c.draw_series(std::iter::once(Polygon::new(band, col.mix(0.18).filled())))?;
            c.draw_series(LineSeries::new(
                curve.iter().map(|p| (p.0, p.1)),
                col.stroke_width(3),
            ))?
            .label(env.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
            c.draw_series(
                curve
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, col.filled())),
            )?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::instances;

    #[test]
    fn instance_counts_from_workload_names() {
        assert_eq!(instances("true-x4"), Some(4.0));
        assert_eq!(instances("peak-memory-x8"), Some(8.0));
        assert_eq!(instances("true"), None);
    }
}
