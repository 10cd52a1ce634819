//! The report's SVG plots: bars with seed spread (Total, training time, peak memory) and the
//! heatmap of scIB metrics. Plain SVG text, so the HTML report embeds them as they are.

use std::fmt::Write as _;

use super::render::esc;
use super::{GroupRow, RANKED_TASKS, RankRow, SCIB_COLUMNS};

/// Width in pixels of a right-aligned label column for these labels at `font_px` (sans-serif
/// averages about 0.6 em a character), at least 120.
fn label_width(labels: impl Iterator<Item = String>, font_px: f64) -> f64 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    (longest as f64 * font_px * 0.6 + 20.0).max(120.0)
}

/// A right-aligned row label ending at `x`.
fn row_label(s: &mut String, x: f64, y: f64, text: &str) {
    let _ = write!(
        s,
        r#"<text x="{x}" y="{y}" text-anchor="end">{}</text>"#,
        esc(text)
    );
}

/// A column header centred on `x`, in two lines, so that neighbouring headers never overlap.
fn two_line_header(s: &mut String, x: f64, y: f64, first: &str, second: &str) {
    let _ = write!(
        s,
        r#"<text x="{x}" y="{y}" text-anchor="middle" font-size="11"><tspan x="{x}">{}</tspan><tspan x="{x}" dy="13">{}</tspan></text>"#,
        esc(first),
        esc(second)
    );
}

/// Bar chart of Total (mean, with ±std whiskers) per group.
pub(super) fn bars(groups: &[GroupRow], key: &str, title: &str, unit: &str) -> String {
    let items: Vec<(&GroupRow, (f64, f64))> = groups
        .iter()
        .filter_map(|g| g.values.get(key).map(|v| (g, *v)))
        .collect();
    // the label column grows with the longest label, so that no label is cut off
    let left = label_width(items.iter().map(|(g, _)| g.label(true)), 12.0);
    let (w, bar_h) = (left + 460.0, 22.0);
    let h = 50.0 + bar_h * items.len() as f64 + 30.0;
    let max = items
        .iter()
        .map(|(_, (m, s))| m + s)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let scale = (w - left - 80.0) / max;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (g, (m, sd))) in items.iter().enumerate() {
        let y = 40.0 + i as f64 * bar_h;
        let label = g.label(true);
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{left}" y="{}" width="{:.1}" height="{}" fill="#4c78a8"/><line x1="{:.1}" x2="{:.1}" y1="{}" y2="{}" stroke="black"/><text x="{:.1}" y="{}">{:.3}{unit}</text>"##,
            left - 6.0,
            y + 14.0,
            esc(&label),
            y + 3.0,
            m * scale,
            bar_h - 6.0,
            left + (m - sd).max(0.0) * scale,
            left + (m + sd) * scale,
            y + bar_h / 2.0,
            y + bar_h / 2.0,
            left + (m + sd) * scale + 6.0,
            y + 15.0,
            m
        );
    }
    s.push_str("</svg>");
    s
}

/// Heatmap of the scIB metrics (rows: groups, columns: metrics; colour: value in [0, 1]).
pub(super) fn heatmap(groups: &[GroupRow]) -> String {
    let cols: Vec<(&str, &str)> = SCIB_COLUMNS
        .iter()
        .copied()
        .chain([("bio", "Bio"), ("batch", "Batch"), ("total", "Total")])
        .collect();
    let rows: Vec<&GroupRow> = groups.iter().filter(|g| g.has_scib()).collect();
    let left = label_width(rows.iter().map(|g| g.label(false)), 11.0);
    let (cell_w, cell_h, top) = (70.0, 22.0, 120.0);
    let w = left + cell_w * cols.len() as f64 + 20.0;
    let h = top + cell_h * rows.len() as f64 + 20.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><text x="10" y="20" font-size="15" font-weight="bold">scIB metrics (mean over seeds)</text>"#
    );
    for (j, (_, name)) in cols.iter().enumerate() {
        let x = left + j as f64 * cell_w + cell_w / 2.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{}" transform="rotate(-40 {x} {})">{}</text>"#,
            top - 8.0,
            top - 8.0,
            esc(name)
        );
    }
    for (i, g) in rows.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        row_label(&mut s, left - 6.0, y + 15.0, &g.label(false));
        for (j, (k, _)) in cols.iter().enumerate() {
            let x = left + j as f64 * cell_w;
            match g.values.get(*k) {
                Some((m, _)) => {
                    let t = m.clamp(0.0, 1.0);
                    let (r, gg, b) = (
                        (255.0 * (1.0 - t)) as u8,
                        (120.0 + 100.0 * t) as u8,
                        (255.0 * (1.0 - 0.6 * t)) as u8,
                    );
                    let _ = write!(
                        s,
                        r#"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="rgb({r},{gg},{b})" stroke="white"/><text x="{}" y="{}" text-anchor="middle">{m:.2}</text>"#,
                        x + cell_w / 2.0,
                        y + 15.0
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="#eee" stroke="white"/>"##
                    );
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// A colour of the viridis map (matplotlib's default) at `t` in [0, 1], by linear
/// interpolation between five of its stops.
pub(crate) fn viridis(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    format!("rgb({},{},{})", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The scIB results table of one dataset, drawn as scib-metrics' `plot_results_table` draws
/// it: one row per method ranked by Total (best first), a circle per metric sized and
/// coloured by its value, and bars for Bio, Batch and Total. Values are unscaled, circles and
/// bars alike (the scaled aggregates are in the tables), so that every number drawn is one
/// of the table's.
pub(super) fn scib_table(groups: &[GroupRow], dataset: &str) -> String {
    let (bio_k, batch_k, total_k) = ("bio", "batch", "total");
    let mut rows: Vec<&GroupRow> = groups
        .iter()
        .filter(|g| g.key.dataset == dataset && g.has_scib())
        .collect();
    let total = |g: &GroupRow| g.values.get(total_k).map_or(f64::NEG_INFINITY, |v| v.0);
    // ranked by Total, the unintegrated baseline at the bottom as in scIB tables
    rows.sort_by(|a, b| {
        a.is_baseline()
            .cmp(&b.is_baseline())
            .then(total(b).total_cmp(&total(a)))
    });
    // the dataset is in the title; a row is the rest of its label
    let label = |g: &GroupRow| {
        let k = &g.key;
        if g.is_baseline() {
            return format!("{} · h{}", g.method_label(), k.hidden_dim);
        }
        let mut l = format!("{} · {} · h{}", k.method, k.augmentation, k.hidden_dim);
        if !k.settings.is_empty() {
            l.push_str(" · ");
            l.push_str(&k.settings);
        }
        l
    };
    let left = label_width(rows.iter().map(|g| label(g)), 12.0);
    let (cell_w, row_h, top) = (70.0, 34.0, 110.0);
    let bar_w = 120.0;
    let metrics_w = cell_w * SCIB_COLUMNS.len() as f64;
    let w = left + metrics_w + 3.0 * bar_w + 30.0;
    let h = top + row_h * rows.len() as f64 + 30.0;
    let title = format!("{dataset}: scIB metrics, ranked by Total (unscaled, mean over seeds)");
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(&title)
    );
    // column groups, as scib-metrics labels them
    let n_bio = 5.0;
    for (x0, width, name) in [
        (left, cell_w * n_bio, "Bio conservation"),
        (
            left + cell_w * n_bio,
            metrics_w - cell_w * n_bio,
            "Batch correction",
        ),
        (left + metrics_w, 3.0 * bar_w, "Aggregate score"),
    ] {
        let _ = write!(
            s,
            r##"<text x="{}" y="48" text-anchor="middle" font-weight="bold">{name}</text><line x1="{}" x2="{}" y1="54" y2="54" stroke="#444"/>"##,
            x0 + width / 2.0,
            x0 + 4.0,
            x0 + width - 4.0
        );
    }
    let headers = SCIB_COLUMNS
        .iter()
        .map(|(_, h)| *h)
        .chain(["Bio", "Batch", "Total"]);
    for (j, name) in headers.enumerate() {
        let x = if j < SCIB_COLUMNS.len() {
            left + (j as f64 + 0.5) * cell_w
        } else {
            left + metrics_w + (j - SCIB_COLUMNS.len()) as f64 * bar_w + bar_w / 2.0
        };
        let (first, second) = name.split_once(' ').unwrap_or((name, ""));
        two_line_header(&mut s, x, top - 30.0, first, second);
    }
    for (i, g) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let cy = y + row_h / 2.0;
        if i % 2 == 0 {
            let _ = write!(
                s,
                r##"<rect x="0" y="{y}" width="{w}" height="{row_h}" fill="#f6f6f6"/>"##
            );
        }
        row_label(&mut s, left - 8.0, cy + 4.0, &label(g));
        for (j, (k, _)) in SCIB_COLUMNS.iter().enumerate() {
            let cx = left + (j as f64 + 0.5) * cell_w;
            match g.values.get(*k) {
                Some((m, _)) => {
                    let r = 4.0 + 11.0 * m.clamp(0.0, 1.0);
                    let _ = write!(
                        s,
                        r#"<circle cx="{cx}" cy="{cy}" r="{r:.1}" fill="{}"/>"#,
                        viridis(*m)
                    );
                    // the value inside a large circle, beside a small one
                    if r >= 10.0 {
                        let ink = if *m > 0.6 { "black" } else { "white" };
                        let _ = write!(
                            s,
                            r#"<text x="{cx}" y="{}" text-anchor="middle" font-size="9" fill="{ink}">{m:.2}</text>"#,
                            cy + 3.0
                        );
                    } else {
                        let _ = write!(
                            s,
                            r##"<text x="{:.1}" y="{}" font-size="9" fill="#333">{m:.2}</text>"##,
                            cx + r + 2.0,
                            cy + 3.0
                        );
                    }
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<text x="{cx}" y="{}" text-anchor="middle" fill="#999">–</text>"##,
                        cy + 4.0
                    );
                }
            }
        }
        for (j, k) in [bio_k, batch_k, total_k].into_iter().enumerate() {
            let x = left + metrics_w + j as f64 * bar_w + 6.0;
            if let Some((m, _)) = g.values.get(k) {
                // room for the value after the longest bar
                let len = (bar_w - 50.0) * m.clamp(0.0, 1.0);
                let _ = write!(
                    s,
                    r##"<rect x="{x}" y="{}" width="{len:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" font-size="11">{m:.3}</text>"##,
                    y + 6.0,
                    row_h - 12.0,
                    viridis(*m),
                    x + len + 4.0,
                    cy + 4.0
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// The ranking across datasets: a row per method, a column per task, each cell coloured by
/// its mean rank (dark = best) and labelled with it.
pub(super) fn ranking(ranking: &[RankRow]) -> String {
    let tasks: Vec<&str> = RANKED_TASKS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| ranking.iter().any(|r| r.ranks.contains_key(*t)))
        .collect();
    let worst = ranking
        .iter()
        .flat_map(|r| r.ranks.values().map(|v| v.0))
        .fold(1.0f64, f64::max);
    let left = label_width(ranking.iter().map(|r| r.method.clone()), 12.0);
    let (cell_w, cell_h, top) = (150.0, 26.0, 70.0);
    let w = left + cell_w * tasks.len() as f64 + 20.0;
    let h = top + cell_h * ranking.len() as f64 + 20.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">Mean rank across datasets (1 = best)</text>"#
    );
    for (j, t) in tasks.iter().enumerate() {
        let (first, second) = t.split_once(" (").unwrap_or((t, ""));
        let x = left + (j as f64 + 0.5) * cell_w;
        two_line_header(&mut s, x, top - 24.0, first, &second.replace(')', ""));
    }
    for (i, r) in ranking.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        row_label(&mut s, left - 6.0, y + 17.0, &r.method);
        for (j, t) in tasks.iter().enumerate() {
            let x = left + j as f64 * cell_w;
            if let Some((m, _)) = r.ranks.get(*t) {
                // best rank → the dark end of viridis
                let t01 = if worst > 1.0 {
                    (m - 1.0) / (worst - 1.0)
                } else {
                    0.0
                };
                let ink = if t01 > 0.5 { "black" } else { "white" };
                let _ = write!(
                    s,
                    r#"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="{}" stroke="white"/><text x="{}" y="{}" text-anchor="middle" fill="{ink}">{m:.2}</text>"#,
                    viridis(t01),
                    x + cell_w / 2.0,
                    y + 17.0
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scib_table_ranks_rows_by_total_and_draws_a_circle_per_metric() {
        let row = |method: &str, total: f64| GroupRow {
            group: method.into(),
            key: super::super::RowKey {
                dataset: "pbmc".into(),
                method: method.into(),
                augmentation: "clear".into(),
                hidden_dim: 64,
                settings: String::new(),
            },
            n_done: 2,
            n_failed: 0,
            values: SCIB_COLUMNS
                .iter()
                .map(|(k, _)| (k.to_string(), (0.5, 0.0)))
                .chain([("total".to_string(), (total, 0.0))])
                .collect(),
        };
        let groups = vec![row("vicreg", 0.4), row("simclr", 0.7), row("byol", 0.55)];
        let svg = scib_table(&groups, "pbmc");
        let at = |m: &str| svg.find(&format!(">{m} ")).unwrap();
        assert!(
            at("simclr") < at("byol") && at("byol") < at("vicreg"),
            "ranked by Total"
        );
        assert_eq!(svg.matches("<circle").count(), 3 * SCIB_COLUMNS.len());
        assert!(svg.contains("Bio conservation") && svg.contains("Aggregate score"));
        assert_eq!(viridis(0.0), "rgb(68,1,84)");
        assert_eq!(viridis(1.0), "rgb(253,231,37)");
    }

    #[test]
    fn label_column_fits_the_longest_label() {
        let short = label_width(["a".to_string()].into_iter(), 12.0);
        assert_eq!(short, 120.0, "a minimum width");
        let long = label_width(["x".repeat(100), "y".into()].into_iter(), 12.0);
        assert!(long >= 100.0 * 12.0 * 0.6, "{long}");
    }
}
