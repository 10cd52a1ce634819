//! Scatter plots of a 2-D layout (a UMAP) as SVG: one panel per obs column, categorical
//! columns in a 20-colour palette with a legend, numeric ones on viridis with their range.
//! Points are drawn in a fixed shuffled order so that no category hides under another.

use std::fmt::Write as _;

use ndarray::ArrayView2;
use scssl_data::Column;

use crate::report::render::esc;
use crate::report::svg::viridis;

/// matplotlib's tab20 (scanpy's palette for up to 20 categories).
const TAB20: [&str; 20] = [
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
];

/// How many legend entries a panel lists before "… and N more".
const MAX_LEGEND: usize = 24;

/// Per-cell colours and the legend (colour, label) of one obs column.
pub fn colours_of(col: &Column, n: usize) -> (Vec<String>, Vec<(String, String)>) {
    match col {
        Column::Categorical {
            codes, categories, ..
        } => {
            let pick = |c: i32| {
                usize::try_from(c).ok().map_or("#dddddd".to_string(), |c| {
                    TAB20[c % TAB20.len()].to_string()
                })
            };
            (
                codes.iter().map(|&c| pick(c)).collect(),
                categories
                    .iter()
                    .enumerate()
                    .map(|(c, name)| (pick(c as i32), name.clone()))
                    .collect(),
            )
        }
        Column::Float(_) | Column::Int { .. } => {
            let v: Vec<f64> = (0..n)
                .map(|i| {
                    col.value_string(i)
                        .and_then(|t| t.parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                })
                .collect();
            let (a, b) = v
                .iter()
                .filter(|x| x.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            let t = |x: f64| if b > a { (x - a) / (b - a) } else { 0.5 };
            (
                v.iter()
                    .map(|&x| {
                        if x.is_finite() {
                            viridis(t(x))
                        } else {
                            "#dddddd".into()
                        }
                    })
                    .collect(),
                vec![
                    (viridis(0.0), format!("{a:.3}")),
                    (viridis(1.0), format!("{b:.3}")),
                ],
            )
        }
        other => {
            // strings and bools: their distinct values as categories
            let vals: Vec<Option<String>> = (0..n).map(|i| other.value_string(i)).collect();
            let mut cats: Vec<String> = vals.iter().flatten().cloned().collect();
            cats.sort();
            cats.dedup();
            let pick = |v: &Option<String>| {
                v.as_ref()
                    .and_then(|v| cats.binary_search(v).ok())
                    .map_or("#dddddd".to_string(), |c| {
                        TAB20[c % TAB20.len()].to_string()
                    })
            };
            (
                vals.iter().map(pick).collect(),
                cats.iter()
                    .enumerate()
                    .map(|(c, name)| (TAB20[c % TAB20.len()].to_string(), name.clone()))
                    .collect(),
            )
        }
    }
}

/// Draws `layout` into the square `size` at (`x0`, `y0`) with a frame, one circle per cell in
/// a fixed shuffled order (so that no category hides under another).
fn draw_points(
    s: &mut String,
    (x0, y0, size): (f64, f64, f64),
    layout: ArrayView2<'_, f32>,
    colours: &[String],
) {
    let n = layout.nrows();
    // point size falls with the number of cells and the panel, as scanpy's (120000 / n)
    let r = ((120_000.0 / n.max(1) as f64).sqrt().clamp(0.6, 4.0) / 1.6 * size / 420.0).max(0.4);
    let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for row in layout.rows() {
        for d in 0..2 {
            lo[d] = lo[d].min(finite(row[d]));
            hi[d] = hi[d].max(finite(row[d]));
        }
    }
    let span = |d: usize| {
        if hi[d] > lo[d] {
            (hi[d] - lo[d]) as f64
        } else {
            1.0
        }
    };
    let px = |i: usize, d: usize| {
        (finite(layout[[i, d]]) - lo[d]) as f64 / span(d) * (size - 20.0) + 10.0
    };
    let _ = write!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{size}" height="{size}" fill="none" stroke="#ccc"/>"##
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for &i in &order {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{r:.2}" fill="{}"/>"#,
            x0 + px(i, 0),
            y0 + size - px(i, 1),
            colours.get(i).map_or("#dddddd", String::as_str)
        );
    }
}

/// A legend (colour dots and labels) from (`x`, `y`) down, cut at [`MAX_LEGEND`] entries.
fn draw_legend(s: &mut String, x: f64, y: f64, legend: &[(String, String)]) {
    for (k, (c, label)) in legend.iter().take(MAX_LEGEND).enumerate() {
        let ly = y + 10.0 + k as f64 * 16.0;
        let _ = write!(
            s,
            r#"<circle cx="{x}" cy="{ly}" r="5" fill="{c}"/><text x="{}" y="{}">{}</text>"#,
            x + 10.0,
            ly + 4.0,
            esc(label)
        );
    }
    if legend.len() > MAX_LEGEND {
        let _ = write!(
            s,
            r##"<text x="{x}" y="{}" fill="#666">… and {} more</text>"##,
            y + 14.0 + MAX_LEGEND as f64 * 16.0,
            legend.len() - MAX_LEGEND
        );
    }
}

/// An SVG of `layout` (cells × 2) with one panel per `(name, column)`, titled `title`.
pub fn scatter_svg(layout: ArrayView2<'_, f32>, panels: &[(&str, &Column)], title: &str) -> String {
    let n = layout.nrows();
    let (plot, legend_w, pad) = (420.0f64, 190.0f64, 30.0f64);
    let panel_w = plot + legend_w + pad;
    let w = pad + panel_w * panels.len().max(1) as f64;
    let h = plot + 90.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/><text x="{pad}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (p, (name, col)) in panels.iter().enumerate() {
        let x0 = pad + p as f64 * panel_w;
        let _ = write!(
            s,
            r#"<text x="{x0}" y="50" font-weight="bold">{}</text>"#,
            esc(name)
        );
        let (colours, legend) = colours_of(col, n);
        draw_points(&mut s, (x0, 60.0, plot), layout, &colours);
        draw_legend(&mut s, x0 + plot + 14.0, 60.0, &legend);
    }
    s.push_str("</svg>");
    s
}

/// One row of [`small_multiples_svg`]: its label, its layout, its colourings (same columns,
/// in the same order, in every row).
pub struct LayoutRow<'a> {
    /// Row label (e.g. `simclr · clear · h64`).
    pub label: String,
    /// Cells × 2.
    pub layout: ArrayView2<'a, f32>,
    /// (obs column, its values for these cells).
    pub colourings: Vec<(String, Column)>,
}

/// A grid of small scatter plots: a row per layout (run), a column per colouring, with one
/// legend per column (from the first row) on the right.
pub fn small_multiples_svg(rows: &[LayoutRow<'_>], title: &str) -> String {
    let (size, pad, label_h, legend_w) = (220.0f64, 14.0f64, 20.0f64, 170.0f64);
    let n_cols = rows.first().map_or(0, |r| r.colourings.len()).max(1);
    let grid_w = n_cols as f64 * (size + pad);
    let w = pad + grid_w + legend_w * n_cols as f64 + pad;
    let h = 70.0 + rows.len() as f64 * (size + label_h + pad);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/><text x="{pad}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (c, (name, _)) in rows
        .first()
        .map(|r| r.colourings.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let _ = write!(
            s,
            r#"<text x="{}" y="48" font-weight="bold">coloured by {}</text>"#,
            pad + c as f64 * (size + pad),
            esc(name)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = 60.0 + i as f64 * (size + label_h + pad);
        let _ = write!(
            s,
            r#"<text x="{pad}" y="{}">{}</text>"#,
            y + 14.0,
            esc(&row.label)
        );
        for (c, (_, col)) in row.colourings.iter().enumerate() {
            let (colours, legend) = colours_of(col, row.layout.nrows());
            draw_points(
                &mut s,
                (pad + c as f64 * (size + pad), y + label_h, size),
                row.layout,
                &colours,
            );
            if i == 0 {
                let lx = pad + grid_w + c as f64 * legend_w + 10.0;
                let _ = write!(
                    s,
                    r#"<text x="{lx}" y="{}" font-weight="bold">{}</text>"#,
                    y + label_h + 4.0,
                    esc(&row.colourings[c].0)
                );
                draw_legend(&mut s, lx, y + label_h + 10.0, &legend);
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn one_panel_per_column_with_a_legend_and_every_cell_drawn() {
        let layout = Array2::from_shape_fn((6, 2), |(i, d)| (i * (d + 1)) as f32);
        let types = Column::categorical_from_strings(&["T", "B", "T", "NK", "B", "T"]);
        let score = Column::Float(vec![0.0, 1.0, 2.0, f64::NAN, 4.0, 5.0]);
        let svg = scatter_svg(
            layout.view(),
            &[("cell_type", &types), ("score", &score)],
            "t",
        );
        // 6 cells in two panels, plus 3 + 2 legend dots
        assert_eq!(svg.matches("<circle").count(), 12 + 5);
        assert!(svg.contains(">NK<") && svg.contains(">5.000<"));
        assert!(svg.contains("#dddddd"), "a missing value is grey");
    }

    #[test]
    fn small_multiples_draw_every_run_and_one_legend_per_column() {
        let layout = Array2::from_shape_fn((4, 2), |(i, d)| (i + d) as f32);
        let row = |label: &str| LayoutRow {
            label: label.into(),
            layout: layout.view(),
            colourings: vec![
                (
                    "cell_type".into(),
                    Column::categorical_from_strings(&["T", "B", "T", "B"]),
                ),
                (
                    "batch".into(),
                    Column::categorical_from_strings(&["b1", "b1", "b2", "b2"]),
                ),
            ],
        };
        let svg = small_multiples_svg(&[row("simclr"), row("vicreg")], "t");
        // 2 runs × 2 colourings × 4 cells, plus one legend of 2 entries per column
        assert_eq!(svg.matches("<circle").count(), 16 + 4);
        assert!(svg.contains(">simclr<") && svg.contains(">vicreg<"));
    }
}
