//! Rendering a result store's rows and groups: the CSV files, the Markdown tables, and the
//! Markdown and HTML documents built from the same tables.

use std::fmt::Write as _;

use super::{GroupRow, RANKED_TASKS, RankRow, RowKey, RunRow, SCALED_COLUMNS, SCIB_COLUMNS};

/// One table of the report: its Markdown and HTML headings and the table (Markdown).
pub(super) struct Section {
    pub(super) md_title: &'static str,
    pub(super) html_title: &'static str,
    pub(super) table: String,
}

/// The report's tables, in order: scIB (always; the main table), annotation and modality
/// prediction (when some group has them), cost.
pub(super) fn sections(groups: &[GroupRow], ranking: &[RankRow]) -> Vec<Section> {
    let scib_cols: Vec<(&str, &str)> = [("bio", "Bio"), ("batch", "Batch"), ("total", "Total")]
        .into_iter()
        .chain(SCALED_COLUMNS.iter().copied())
        .chain(SCIB_COLUMNS.iter().copied())
        .collect();
    let scib: Vec<GroupRow> = groups
        .iter()
        .filter(|g| g.has_scib() || g.n_failed > 0 && g.values.is_empty())
        .cloned()
        .collect();
    let mut out = vec![Section {
        md_title: "Batch correction (scIB)",
        html_title: "Batch correction (scIB)",
        table: table_md(&scib, &scib_cols),
    }];
    let ann: Vec<GroupRow> = groups
        .iter()
        .filter(|g| g.values.keys().any(|k| k.starts_with("annotation")))
        .cloned()
        .collect();
    if !ann.is_empty() {
        let cols = [
            ("annotation_f1_shared", "Macro-F1"),
            ("annotation_acc_shared", "Accuracy"),
            ("annotation_f1_in", "Macro-F1-in"),
            ("annotation_acc_in", "Accuracy-in"),
            ("annotation_rna_f1_in", "Macro-F1 (RNA only)"),
        ];
        out.push(Section {
            md_title: "Cell-type annotation (query-to-reference, kNN k = 11)",
            html_title: "Cell-type annotation",
            table: table_md(&ann, &cols),
        });
    }
    let modal: Vec<GroupRow> = groups
        .iter()
        .filter(|g| {
            g.values.contains_key("modality_pearson_mean")
                || g.values.contains_key("modality_own_pearson_mean")
        })
        .cloned()
        .collect();
    if !modal.is_empty() {
        let cols = [
            ("modality_pearson_mean", "Mean Pearson"),
            ("modality_pearson_min", "Min Pearson"),
            ("modality_pearson_max", "Max Pearson"),
            ("modality_f1_predicted", "Macro-F1 with predicted protein"),
            (
                "modality_own_pearson_mean",
                "Mean Pearson, the method's own prediction",
            ),
        ];
        out.push(Section {
            md_title: "Missing-modality prediction (protein from RNA: kNN k = 5 in the RNA embedding; scButterfly and scTEL also by their own translator)",
            html_title: "Missing-modality prediction",
            table: table_md(&modal, &cols),
        });
    }
    if !ranking.is_empty() {
        out.push(Section {
            md_title: "Ranking across datasets (mean rank per task, 1 = best)",
            html_title: "Ranking across datasets",
            table: ranking_md(ranking),
        });
    }
    let cost_cols = [
        ("train_seconds", "Training s"),
        ("peak_rss_mb", "Peak memory MB"),
    ];
    out.push(Section {
        md_title: "Cost",
        html_title: "Cost",
        table: table_md(groups, &cost_cols),
    });
    out
}

/// `report.md`: a summary line, every section, the plots (as files next to it), failed runs.
pub(super) fn markdown(
    rows: &[RunRow],
    sections: &[Section],
    plots: &[(String, String)],
    failed: &[&RunRow],
) -> String {
    let mut md = format!(
        "# scssl benchmark report\n\n{} runs: {} done, {} failed, {} not finished. Values are mean ± std over seeds; failed runs are listed, never scored. Bio, Batch and Total are scib-metrics' unscaled aggregates; the \"(scaled)\" columns min–max scale each metric across the rows of a dataset first, as the paper's tables do (from the seed means, so they depend on which rows share the table).\n",
        rows.len(),
        rows.iter().filter(|r| r.state == "done").count(),
        failed.len(),
        rows.iter()
            .filter(|r| r.state != "done" && r.state != "failed")
            .count(),
    );
    for s in sections {
        let _ = write!(md, "\n## {}\n\n{}\n", s.md_title, s.table);
    }
    md.push('\n');
    let images: Vec<String> = plots
        .iter()
        .map(|(file, _)| {
            format!(
                "![{}]({file}) ([PNG]({}))",
                plot_alt(file),
                file.replace(".svg", ".png")
            )
        })
        .collect();
    md.push_str(&images.join("\n\n"));
    md.push('\n');
    if !failed.is_empty() {
        md.push_str("\n## Failed runs\n\n| run | error |\n|---|---|\n");
        for r in failed {
            let _ = writeln!(
                md,
                "| {} | {} |",
                r.id,
                r.error
                    .as_deref()
                    .unwrap_or_default()
                    .replace('|', "/")
                    .replace('\n', " ")
            );
        }
    }
    md
}

/// The alt text of a plot in `report.md`.
fn plot_alt(file: &str) -> &'static str {
    match file {
        "total_by_method.svg" => "Total",
        "metric_heatmap.svg" => "Metrics",
        "cost_time.svg" => "Time",
        "cost_memory.svg" => "Memory",
        "ranking.svg" => "Ranking",
        f if f.starts_with("umap_") => "UMAP",
        _ => "scIB results table",
    }
}

/// `report.html`: the same sections as HTML tables, the plots inline, failed runs.
pub(super) fn html(
    rows: &[RunRow],
    sections: &[Section],
    plots: &[(String, String)],
    failed: &[&RunRow],
) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scssl benchmark report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td{white-space:nowrap}th{background:#f3f3f3}svg{max-width:100%;height:auto}</style></head><body><h1>scssl benchmark report</h1>",
    );
    let _ = write!(
        html,
        "<p>{} runs, {} failed. Values are mean ± std over seeds. Bio, Batch and Total are scib-metrics' unscaled aggregates; the “(scaled)” columns min–max scale each metric across the rows of a dataset first, as the paper's tables do.</p>",
        rows.len(),
        failed.len(),
    );
    // the scIB results tables and the UMAP grids (one of each per dataset) right under the
    // scIB table: the first pictures a reader of integration results looks at
    let is_scib_table = |file: &str| file.starts_with("scib_table_") || file.starts_with("umap_");
    for (i, s) in sections.iter().enumerate() {
        let _ = write!(
            html,
            "<h2>{}</h2>{}",
            s.html_title,
            md_to_html_table(&s.table)
        );
        if i == 0 {
            for (_, svg) in plots.iter().filter(|(f, _)| is_scib_table(f)) {
                let _ = write!(html, "<p>{svg}</p>");
            }
        }
    }
    let svgs: Vec<&str> = plots
        .iter()
        .filter(|(f, _)| !is_scib_table(f))
        .map(|(_, svg)| svg.as_str())
        .collect();
    let _ = write!(html, "<h2>Plots</h2>{}", svgs.join("<br>"));
    // every figure is also a file beside this page, as SVG and as PNG
    let files: Vec<String> = plots
        .iter()
        .map(|(f, _)| {
            let png = f.replace(".svg", ".png");
            format!(
                "<li>{}: <a href=\"{}\">SVG</a> · <a href=\"{}\">PNG</a></li>",
                esc(plot_alt(f)),
                esc(f),
                esc(&png)
            )
        })
        .collect();
    let _ = write!(html, "<h2>Figure files</h2><ul>{}</ul>", files.concat());
    if !failed.is_empty() {
        html.push_str("<h2>Failed runs</h2><ul>");
        for r in failed {
            let _ = write!(
                html,
                "<li>{}: {}</li>",
                esc(&r.id),
                esc(r.error.as_deref().unwrap_or_default())
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>\n");
    html
}

/// The ranking as a Markdown table: one row per method, a column per task that has ranks.
fn ranking_md(ranking: &[RankRow]) -> String {
    let tasks: Vec<&str> = RANKED_TASKS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| ranking.iter().any(|r| r.ranks.contains_key(*t)))
        .collect();
    let mut s = String::from("| method |");
    for t in &tasks {
        let _ = write!(s, " {t} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(tasks.len()));
    s.push('\n');
    for r in ranking {
        let _ = write!(s, "| {} |", r.method.replace('|', "/"));
        for t in &tasks {
            match r.ranks.get(*t) {
                Some((m, n)) => {
                    let _ = write!(
                        s,
                        " {m:.2} ({n} dataset{}) |",
                        if *n == 1 { "" } else { "s" }
                    );
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// `ranking.csv`: method, task, mean rank, datasets.
pub(super) fn ranking_csv(ranking: &[RankRow]) -> String {
    let mut csv = String::from("method,task,mean_rank,n_datasets\n");
    for r in ranking {
        for (t, (m, n)) in &r.ranks {
            let _ = writeln!(csv, "{},{},{m},{n}", csv_field(&r.method), csv_field(t));
        }
    }
    csv
}

/// `summary.csv`: one row per group, `<metric>_mean,<metric>_std` for every metric any group has.
pub(super) fn summary_csv(groups: &[GroupRow]) -> String {
    let mut keys: Vec<String> = groups
        .iter()
        .flat_map(|g| g.values.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut csv = String::from("dataset,method,augmentation,hidden_dim,settings,n_done,n_failed");
    for k in &keys {
        let _ = write!(csv, ",{k}_mean,{k}_std");
    }
    csv.push('\n');
    for g in groups {
        let _ = write!(csv, "{},{},{}", row_fields(&g.key), g.n_done, g.n_failed);
        for k in &keys {
            match g.values.get(k) {
                Some((m, s)) => {
                    let _ = write!(csv, ",{m},{s}");
                }
                None => csv.push_str(",,"),
            }
        }
        csv.push('\n');
    }
    csv
}

/// `runs.csv`: one row per run with its aggregates, cost and error.
pub(super) fn runs_csv(rows: &[RunRow]) -> String {
    let mut rcsv = String::from(
        "id,dataset,method,augmentation,hidden_dim,settings,seed,state,total,bio,batch,train_seconds,peak_rss_mb,error\n",
    );
    for r in rows {
        let g = |k: &str| r.values.get(k).map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            rcsv,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.id),
            row_fields(&r.key),
            r.seed,
            r.state,
            g("total"),
            g("bio"),
            g("batch"),
            r.train_seconds.map(|v| v.to_string()).unwrap_or_default(),
            r.peak_rss_mb.map(|v| v.to_string()).unwrap_or_default(),
            csv_field(r.error.as_deref().unwrap_or_default())
        );
    }
    rcsv
}

fn fmt(v: Option<&(f64, f64)>) -> String {
    match v {
        Some((m, s)) if *s > 0.0 => format!("{m:.3} ± {s:.3}"),
        Some((m, _)) => format!("{m:.3}"),
        None => "–".into(),
    }
}

/// `dataset,method,augmentation,hidden_dim,settings` as CSV fields.
fn row_fields(key: &RowKey) -> String {
    format!(
        "{},{},{},{},{}",
        csv_field(&key.dataset),
        csv_field(&key.method),
        csv_field(&key.augmentation),
        key.hidden_dim,
        csv_field(&key.settings)
    )
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn table_md(groups: &[GroupRow], cols: &[(&str, &str)]) -> String {
    // a settings column only when some rows would otherwise look the same
    let with_settings = groups.iter().any(|g| !g.key.settings.is_empty());
    let mut s = String::from("| dataset | method | augmentation | h |");
    if with_settings {
        s.push_str(" settings |");
    }
    s.push_str(" seeds |");
    for (_, h) in cols {
        let _ = write!(s, " {h} |");
    }
    s.push_str("\n|---|---|---|---|---|");
    if with_settings {
        s.push_str("---|");
    }
    s.push_str(&"---|".repeat(cols.len()));
    s.push('\n');
    for g in groups {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            g.key.dataset,
            g.method_label(),
            if g.is_baseline() {
                "—"
            } else {
                &g.key.augmentation
            },
            g.key.hidden_dim
        );
        if with_settings {
            let _ = write!(s, " {} |", g.key.settings.replace('|', "/"));
        }
        let _ = write!(
            s,
            " {}{} |",
            g.n_done,
            if g.n_failed > 0 {
                format!(" ({} failed)", g.n_failed)
            } else {
                String::new()
            }
        );
        for (k, _) in cols {
            let _ = write!(s, " {} |", fmt(g.values.get(*k)));
        }
        s.push('\n');
    }
    s
}

fn md_to_html_table(md: &str) -> String {
    let mut s = String::from("<table>\n");
    for (i, line) in md.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let tag = if i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for cell in line.trim_matches('|').split('|') {
            let _ = write!(s, "<{tag}>{}</{tag}>", esc(cell.trim()));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("simclr"), "simclr");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
