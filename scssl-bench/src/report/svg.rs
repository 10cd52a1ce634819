//! The report's SVG plots: bars with seed spread (Total, training time, peak memory) and the
//! heatmap of scIB metrics. Plain SVG text, so the HTML report embeds them as they are.

use std::fmt::Write as _;

use super::render::esc;
use super::{GroupRow, SCIB_COLUMNS};

/// Width in pixels of a right-aligned label column for these labels at `font_px` (sans-serif
/// averages about 0.6 em a character), at least 120.
fn label_width(labels: impl Iterator<Item = String>, font_px: f64) -> f64 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    (longest as f64 * font_px * 0.6 + 20.0).max(120.0)
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
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 15.0,
            esc(&g.label(false))
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_column_fits_the_longest_label() {
        let short = label_width(["a".to_string()].into_iter(), 12.0);
        assert_eq!(short, 120.0, "a minimum width");
        let long = label_width(["x".repeat(100), "y".into()].into_iter(), 12.0);
        assert!(long >= 100.0 * 12.0 * 0.6, "{long}");
    }
}
