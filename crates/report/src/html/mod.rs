//! The page: one self-contained HTML file (styles inline, charts as inline SVG, no script, no
//! network), so it can be projected, mailed or opened from a USB stick.
//!
//! Order of the page: what machine(s) the numbers come from, a warning when guest kernel mode
//! is emulated there, the claims table (a column per machine), then per machine the charts,
//! every row with its note, and the observations with their evidence.

mod tables;

use crate::charts::{Body, Figure};
use crate::load::Machine;
use crate::verdict::{HostVirt, Judgement};
use std::fmt::Write as _;

/// Everything the page shows, computed before any HTML is written.
#[derive(Debug)]
pub struct Page<'a> {
    /// The machines, in the order given.
    pub machines: &'a [Machine],
    /// Per machine, every claim's judgement.
    pub judgements: Vec<Vec<Judgement>>,
    /// Per machine, every figure.
    pub figures: Vec<Vec<Figure>>,
    /// Relative link to criterion's own HTML report, when it exists.
    pub criterion_link: Option<String>,
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1040px; padding: 16px 24px 64px; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 40px; }
.sub { color: #555; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 6px 8px; vertical-align: top; text-align: left; }
th { background: #f4f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.warn { border: 3px solid #d62728; background: #fff4f2; padding: 12px 16px; margin: 20px 0;
        border-radius: 6px; }
.warn h2 { border: 0; margin: 0 0 6px; color: #b0171f; }
.v { font-weight: 700; padding: 1px 8px; border-radius: 10px; white-space: nowrap; }
.v-supported { background: #dff3df; color: #1b6b1b; }
.v-refuted { background: #fde0e0; color: #a11; }
.v-depends { background: #fff1cc; color: #7a5600; }
.v-not-measured { background: #eee; color: #555; }
ul.nums { margin: 6px 0 0 16px; padding: 0; font-size: 13px; }
.caveat { font-style: italic; color: #555; font-size: 13px; margin-top: 6px; }
figure { margin: 28px 0; padding: 0; }
figure svg { max-width: 100%; height: auto; display: block; border: 1px solid #e4e4e8; }
figcaption { font-size: 14px; color: #333; margin-top: 6px; }
.absent { border: 1px dashed #aaa; background: #fafafa; padding: 18px; color: #555; }
.tag { font-size: 12px; background: #eef; border-radius: 8px; padding: 1px 6px; margin-left: 6px; }
pre { white-space: pre-wrap; background: #f7f7f9; padding: 8px; font-size: 12px; }
.scope-in { color: #7a5600; }
"#;

/// Renders the whole page.
pub fn render(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(256 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>isolab report: containers vs microVMs, measured</title>\n");
    let _ = write!(h, "<style>{STYLE}</style>\n</head>\n<body>\n");
    header(&mut h, page);
    tables::fingerprints(&mut h, page.machines);
    emulation_warning(&mut h, page.machines);
    tables::claims(&mut h, page);
    for (i, machine) in page.machines.iter().enumerate() {
        let suffix = if page.machines.len() > 1 {
            format!(" — {}", esc(&machine.label))
        } else {
            String::new()
        };
        let _ = writeln!(h, "<h2 id=\"charts-{i}\">Charts{suffix}</h2>");
        for fig in &page.figures[i] {
            figure(&mut h, fig, i);
        }
        tables::all_rows(&mut h, machine, &suffix);
        tables::observations(&mut h, machine, &suffix);
    }
    footer(&mut h, page);
    h.push_str("</body>\n</html>\n");
    h
}

fn header(h: &mut String, page: &Page<'_>) {
    let files: Vec<String> = page
        .machines
        .iter()
        .map(|m| format!("<code>{}</code>", esc(&m.source.display().to_string())))
        .collect();
    let _ = write!(
        h,
        "<h1>Containers vs microVMs, measured</h1>\n<p class=\"sub\">The claims of the popular \
         \"containers vs virtual machines\" articles, answered with numbers from {} \
         (results: {}). Every verdict below is computed from those files; every chart says how \
         its numbers were taken.</p>\n",
        if page.machines.len() == 1 {
            "one machine".to_string()
        } else {
            format!("{} machines", page.machines.len())
        },
        files.join(", ")
    );
}

/// The prominent note for machines whose guest kernel mode is emulated: what it changes and
/// which rows it touches.
fn emulation_warning(h: &mut String, machines: &[Machine]) {
    for m in machines {
        let fp = &m.results.fingerprint;
        if HostVirt::of(fp) != HostVirt::EmulatedKernelMode {
            continue;
        }
        // Every VM row, grouped by environment: "env: workload, workload (question), …".
        let mut by_env: Vec<(String, Vec<String>)> = Vec::new();
        for r in &m.results.rows {
            if crate::rows::kind(&r.environment) != crate::rows::Kind::Vm {
                continue;
            }
            let item = format!("{} ({})", r.workload, r.question);
            match by_env.iter_mut().find(|(e, _)| *e == r.environment) {
                Some((_, items)) if !items.contains(&item) => items.push(item),
                Some(_) => {}
                None => by_env.push((r.environment.clone(), vec![item])),
            }
        }
        let affected: Vec<String> = by_env
            .iter()
            .map(|(env, items)| format!("<b>{}</b>: {}", esc(env), esc(&items.join(", "))))
            .collect();
        let _ = write!(
            h,
            "<div class=\"warn\" id=\"emulated-kernel-mode\"><h2>⚠ {}: guest kernel mode is \
             emulated on this host</h2>\n<p>KVM here is <b>{}</b>, not VT-x/AMD-V ({}). A guest's \
             user-mode code runs natively, but its kernel mode (CPL0) is emulated, thousands of \
             times slower. What that changes: a Linux guest crawls (it reaches its boot banner, \
             not init), a guest system call cannot be measured, and each VM exit is a nested \
             exit through the paravirtual KVM. isolab's own stub guest runs its workloads in user \
             mode, so its CPU loop and memory passes stay meaningful. On a VT-x/AMD-V machine \
             none of this applies.</p>\n<p>Rows affected — every VM row, most of all a Linux \
             boot, which is almost all guest kernel work: {}.</p>\n<p>Claims affected: C1 \
             (VM start-up, above all the Linux boot rows), C3 (only guest user-mode code is \
             compared), C4 (exit costs, guest system calls).</p></div>\n",
            esc(&m.label),
            esc(&fp.kvm_module),
            esc(&fp.guest_cpl0_detail),
            affected.join("; ")
        );
    }
}

fn figure(h: &mut String, fig: &Figure, machine: usize) {
    let tags: String = fig
        .claims
        .iter()
        .map(|c| format!("<span class=\"tag\">{c}</span>"))
        .collect();
    let _ = write!(
        h,
        "<figure id=\"fig-{}-{machine}\" data-chart=\"{}\">\n<h3>{}{tags}</h3>\n",
        fig.id,
        fig.id,
        esc(fig.title)
    );
    match &fig.body {
        Body::Svg(svg) => h.push_str(svg),
        Body::Absent(why) => {
            let _ = write!(h, "<div class=\"absent\">{}</div>", esc(why));
        }
    }
    let _ = write!(
        h,
        "\n<figcaption>{}</figcaption>\n</figure>\n",
        esc(&fig.caption)
    );
}

fn footer(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2>More</h2>\n<ul>\n");
    match &page.criterion_link {
        Some(link) => {
            let _ = writeln!(
                h,
                "<li><a href=\"{}\">criterion's own reports</a> (<code>cargo bench</code>: \
                 per-benchmark distributions and regressions, drawn by criterion)</li>",
                esc(link)
            );
        }
        None => h.push_str(
            "<li>criterion's own reports: not generated on this machine yet — run <code>cargo \
             bench</code>, then render this report again to link them.</li>\n",
        ),
    }
    let files: Vec<String> = page
        .machines
        .iter()
        .map(|m| esc(&m.source.display().to_string()))
        .collect();
    let _ = write!(
        h,
        "<li>Regenerate this page: <code>isolab report {} --out DIR</code>. The claims are \
         listed in the repository's <code>docs/claims.md</code>.</li>\n</ul>\n",
        files.join(" ")
    );
}
