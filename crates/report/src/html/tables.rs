//! The page's tables: fingerprints, claims (a column per machine), every row, observations.

use super::{esc, Page};
use crate::load::Machine;
use crate::rows::{self, fmt_bytes, fmt_ns, fmt_us};
use crate::verdict::Verdict;
use isolab_bench::schema::{Finding, Row, Unit};
use std::fmt::Write as _;

/// The machine(s): one column each.
pub(super) fn fingerprints(h: &mut String, machines: &[Machine]) {
    h.push_str("<h2 id=\"fingerprint\">Where these numbers come from</h2>\n<table>\n<tr><th></th>");
    for m in machines {
        let _ = write!(h, "<th>{}</th>", esc(&m.label));
    }
    h.push_str("</tr>\n");
    type Field = fn(&Machine) -> String;
    let fields: [(&str, Field); 16] = [
        ("CPU", |m| {
            let fp = &m.results.fingerprint;
            format!("{} × {} cores", fp.cpu_model, fp.cpu_cores)
        }),
        ("Memory", |m| {
            fmt_bytes(m.results.fingerprint.memory_total_bytes as f64)
        }),
        ("Kernel", |m| m.results.fingerprint.kernel_release.clone()),
        ("Runs under a hypervisor", |m| {
            yes_no(m.results.fingerprint.host_is_virtualized)
        }),
        ("KVM module", |m| m.results.fingerprint.kvm_module.clone()),
        ("Guest kernel mode (CPL0) native", |m| {
            match m.results.fingerprint.guest_cpl0_native {
                Some(true) => "yes".into(),
                Some(false) => "NO — emulated".into(),
                None => "unknown (not probed)".into(),
            }
        }),
        ("CPL0 probe", |m| {
            m.results.fingerprint.guest_cpl0_detail.clone()
        }),
        ("cgroups", |m| m.results.fingerprint.cgroup_mode.clone()),
        ("rcu_expedited / favordynmods", |m| {
            let fp = &m.results.fingerprint;
            let rcu = fp.rcu_expedited.map_or("unknown".into(), yes_no);
            format!("{rcu} / {}", yes_no(fp.cgroup_favordynmods))
        }),
        ("Peers", |m| {
            let tools = &m.results.fingerprint.tools;
            tools
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        }),
        ("isolab", |m| {
            let fp = &m.results.fingerprint;
            format!("{} (git {})", fp.isolab_version, fp.git_revision)
        }),
        ("Taken", |m| m.results.fingerprint.date.clone()),
        ("Run", |m| {
            let s = &m.results.settings;
            format!(
                "{}; {} samples per row; {:.0} s",
                if s.quick { "--quick" } else { "full" },
                s.samples_per_row,
                m.results.duration_s
            )
        }),
        ("Questions", |m| m.results.settings.questions.join(", ")),
        ("Order", |m| {
            let s = &m.results.settings;
            format!(
                "interleaved, shuffled every round (seed {}); cold starts after {} ms idle, {} \
                 per row",
                s.shuffle_seed, s.cold_gap_ms, s.cold_samples_per_row
            )
        }),
        ("File", |m| m.source.display().to_string()),
    ];
    for (name, field) in fields {
        let _ = write!(h, "<tr><th>{name}</th>");
        for m in machines {
            let _ = write!(h, "<td>{}</td>", esc(&field(m)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn badge(v: &Verdict) -> String {
    let class = v.word().replace(' ', "-");
    format!("<span class=\"v v-{class}\">{}</span>", v.word())
}

/// C1–C10 with a verdict per machine.
pub(super) fn claims(h: &mut String, page: &Page<'_>) {
    h.push_str(
        "<h2 id=\"claims\">The claims, judged on this hardware</h2>\n<p>Each verdict is computed \
         from the results by fixed rules (whole-process rows only wherever tools are compared); \
         the numbers it rests on and the caveat for the machine are in the cell.</p>\n<table \
         id=\"claims-table\">\n<tr><th>Claim</th>",
    );
    for m in page.machines {
        let _ = write!(h, "<th>{}</th>", esc(&m.label));
    }
    h.push_str("</tr>\n");
    for (c, claim) in crate::claims::CLAIMS.iter().enumerate() {
        let _ = write!(
            h,
            "<tr id=\"claim-{id}\" data-claim=\"{id}\"><td><b>{id}</b> {}<div \
             class=\"caveat\">checked by: {}</div></td>",
            esc(claim.says),
            esc(claim.checked_by),
            id = claim.id
        );
        for judgements in &page.judgements {
            let j = &judgements[c];
            let _ = write!(h, "<td>{}", badge(&j.verdict));
            if let Some(d) = j.verdict.detail() {
                let _ = write!(h, " {}", esc(d));
            }
            if !j.numbers.is_empty() {
                h.push_str("<ul class=\"nums\">");
                for n in &j.numbers {
                    let _ = write!(h, "<li>{}</li>", esc(n));
                }
                h.push_str("</ul>");
            }
            if !j.caveat.is_empty() {
                let _ = write!(h, "<div class=\"caveat\">{}</div>", esc(&j.caveat));
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn fmt_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Us => fmt_us(v),
        Unit::Ns => fmt_ns(v),
        Unit::Bytes => fmt_bytes(v),
        Unit::BytesPerS => format!("{:.2} GB/s", v / 1e9),
        Unit::Count => format!("{v:.0}"),
    }
}

fn row_line(h: &mut String, r: &Row) {
    let scope = match rows::scope(r) {
        rows::Scope::WholeProcess => "whole process".to_string(),
        rows::Scope::InProcess => "<span class=\"scope-in\">in-process</span>".to_string(),
    };
    let start = rows::start_label(r).unwrap_or("");
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{scope}</td><td>{start}</td>",
        r.question,
        esc(&r.environment),
        esc(&r.workload)
    );
    match rows::measured(r) {
        Some((_, s)) => {
            let _ = write!(
                h,
                "<td class=\"num\">{}</td><td class=\"num\">{} – {}</td><td class=\"num\">{}</td>",
                fmt_value(r.unit, s.median),
                fmt_value(r.unit, s.p10),
                fmt_value(r.unit, s.p90),
                s.n
            );
        }
        None => h.push_str("<td>—</td><td>—</td><td>0</td>"),
    }
    let ratio = r
        .ratio_to_host
        .map(|x| format!("{x:.2}"))
        .unwrap_or_default();
    let note = match (rows::reason(r), &r.note) {
        (Some(why), _) => format!("not measured: {why}"),
        (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let _ = writeln!(
        h,
        "<td class=\"num\">{ratio}</td><td>{}</td></tr>",
        esc(&note)
    );
}

/// Every row of one machine with its note, so no figure is read without its conditions.
pub(super) fn all_rows(h: &mut String, m: &Machine, suffix: &str) {
    let _ = write!(
        h,
        "<h2>Every row{suffix}</h2>\n<details><summary>{} rows: median, p10 – p90, samples, \
         ratio to the host (whole-process rows of the same workload only), and each row's \
         note</summary>\n<table>\n<tr><th>question</th><th>environment</th><th>workload</th>\
         <th>scope</th><th>start</th><th>median</th><th>p10 – p90</th><th>n</th><th>×host</th>\
         <th>note</th></tr>\n",
        m.results.rows.len()
    );
    for r in &m.results.rows {
        row_line(h, r);
    }
    h.push_str("</table>\n</details>\n");
}

/// The observations (C5–C10) with their evidence.
pub(super) fn observations(h: &mut String, m: &Machine, suffix: &str) {
    let _ = writeln!(h, "<h2>Observations{suffix}</h2>");
    if m.results.observations.is_empty() {
        h.push_str(
            "<p class=\"absent\">not measured here: this results file holds no observations \
             (C5–C10 are checked by a newer <code>isolab bench</code>).</p>\n",
        );
        return;
    }
    h.push_str(
        "<table>\n<tr><th>claim</th><th>environment</th><th>statement</th><th>held?</th>\
         <th>evidence</th></tr>\n",
    );
    for o in &m.results.observations {
        let held = match &o.outcome {
            Finding::Observed { holds: true } => "yes".to_string(),
            Finding::Observed { holds: false } => "no".to_string(),
            Finding::NotMeasured { reason } => format!("not measured: {reason}"),
        };
        let figures: String = o
            .figures
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{:?}</td><td>{}</td><td>{} <code>{}</code></td><td>{}</td><td><details>\
             <summary>show</summary><pre>{}{}</pre></details></td></tr>",
            o.claim,
            esc(&o.environment),
            esc(&o.statement),
            esc(&o.check),
            esc(&held),
            esc(&figures),
            esc(&o.evidence)
        );
    }
    h.push_str("</table>\n");
}
