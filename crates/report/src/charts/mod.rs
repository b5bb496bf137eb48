//! The report's charts: each one a [`Figure`] holding an inline SVG drawn with `plotters`, or the
//! reason it could not be drawn, and a caption that says what it shows, how it was measured
//! and which claim it informs.
//!
//! Charts only read rows; they never judge a claim (that is [`crate::verdict`]). A chart whose
//! rows are absent or all unmeasured still appears, as "not measured here" with the reasons
//! the results file gives, so a reader sees what is missing rather than a silently shorter
//! page.

mod bars;
mod scaling;
mod startup;

use crate::error::ReportError;
use isolab_bench::schema::Results;
use plotters::prelude::*;

pub use bars::{density, memory, ratios, syscall_and_exits};
pub use scaling::scaling;
pub use startup::{phases, startup};

/// One chart of the page.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable id (the HTML anchor, and what tests look for).
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// The drawing, or why there is none.
    pub body: Body,
    /// What it shows and how it was measured.
    pub caption: String,
    /// The claims it informs.
    pub claims: &'static [&'static str],
}

/// A drawn chart or the reason there is none.
#[derive(Debug, Clone)]
pub enum Body {
    /// A complete `<svg>` element.
    Svg(String),
    /// "Not measured here", and why.
    Absent(String),
}

/// The ids of every figure, in page order.
pub const FIGURE_IDS: [&str; 8] = [
    "startup",
    "phases",
    "memory",
    "density",
    "syscall",
    "ratios",
    "scaling-latency",
    "scaling-memory",
];

/// Every figure for one results file, in page order.
pub fn all(results: &Results) -> Result<Vec<Figure>, ReportError> {
    let [lat, mem] = scaling(results)?;
    Ok(vec![
        startup(results)?,
        phases(results)?,
        memory(results)?,
        density(results)?,
        syscall_and_exits(results)?,
        ratios(results)?,
        lat,
        mem,
    ])
}

/// Chart width in pixels (the page scales it down on narrow screens).
pub(crate) const WIDTH: u32 = 960;
/// Left margin reserved for row labels.
pub(crate) const LABEL_AREA: u32 = 360;

/// Colour for an environment: greys for the host, blues for containers, greens for
/// sandboxes, oranges for VMs; the name picks the shade, so an environment keeps its colour on
/// every chart.
pub(crate) fn colour(environment: &str, _i: usize) -> RGBColor {
    let i = environment.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    use crate::rows::Kind;
    let shades: &[RGBColor] = match crate::rows::kind(environment) {
        Kind::Host => &[RGBColor(90, 90, 90)],
        Kind::Container => &[
            RGBColor(31, 119, 180),
            RGBColor(23, 190, 207),
            RGBColor(57, 59, 121),
            RGBColor(107, 174, 214),
            RGBColor(82, 84, 163),
        ],
        Kind::Sandbox => &[RGBColor(44, 160, 44), RGBColor(116, 196, 118)],
        Kind::Vm => &[
            RGBColor(230, 85, 13),
            RGBColor(214, 39, 40),
            RGBColor(253, 141, 60),
        ],
    };
    shades[i % shades.len()]
}

/// A distinct colour per series index (phase names, scaling lines).
pub(crate) fn series_colour(i: usize) -> RGBColor {
    const P: [RGBColor; 16] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(174, 199, 232),
        RGBColor(255, 187, 120),
        RGBColor(152, 223, 138),
        RGBColor(255, 152, 150),
        RGBColor(197, 176, 213),
        RGBColor(0, 0, 0),
    ];
    P[i % P.len()]
}

/// Runs a drawing closure on an in-memory SVG canvas and returns the `<svg>` text.
pub(crate) fn svg(
    chart: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<String, ReportError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .map_err(|source| ReportError::Draw { chart, source })?;
    }
    Ok(out)
}

/// Rows grouped by environment (in order of first appearance), so the warm and cold rows of
/// one environment sit together.
pub(crate) fn grouped<'a>(
    rows: impl IntoIterator<Item = &'a isolab_bench::schema::Row>,
) -> Vec<&'a isolab_bench::schema::Row> {
    let rows: Vec<&isolab_bench::schema::Row> = rows.into_iter().collect();
    let mut order: Vec<&str> = Vec::new();
    for r in &rows {
        if !order.contains(&r.environment.as_str()) {
            order.push(&r.environment);
        }
    }
    let mut out = rows.clone();
    // A stable sort keeps file order (warm before cold) within an environment.
    out.sort_by_key(|r| order.iter().position(|e| *e == r.environment));
    out
}

/// Height for a chart with `rows` category rows.
pub(crate) fn height_for(rows: usize) -> u32 {
    90 + 28 * rows.max(1) as u32
}

/// The label of row `i` of `labels` at a category axis position, "" between rows.
pub(crate) fn category_label(labels: &[String], y: f64) -> String {
    let i = y.round();
    if (y - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

/// Log-axis bounds around all values, padded by a factor so dots do not sit on the frame.
pub(crate) fn log_bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo <= hi).then(|| (lo / 1.6, hi * 1.6))
}

/// A tick label for a log axis: 1-2-5 values only, so the axis stays readable.
pub(crate) fn log_tick(v: f64, fmt: impl Fn(f64) -> String) -> String {
    let mantissa = v / 10f64.powf(v.log10().floor());
    let m = (mantissa * 1000.0).round() / 1000.0;
    if [1.0, 2.0, 5.0].contains(&m) {
        fmt(v)
    } else {
        String::new()
    }
}
