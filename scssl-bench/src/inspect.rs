//! `scssl inspect`: a human-readable summary of an AnnData file.

use std::fmt::Write;

use scssl_data::io::FileSummary;

/// Renders a summary as text.
pub fn render(s: &FileSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", s.file);
    let _ = writeln!(
        o,
        "  X: {} cells × {} genes, {} ({}){}",
        s.x.shape.0,
        s.x.shape.1,
        s.x.encoding,
        s.x.dtype,
        s.x.nnz
            .map(|n| format!(
                ", {n} stored values ({:.1}% dense)",
                100.0 * n as f64 / ((s.x.shape.0 * s.x.shape.1).max(1)) as f64
            ))
            .unwrap_or_default()
    );
    for (title, cols) in [("obs", &s.obs), ("var", &s.var)] {
        let _ = writeln!(o, "  {title} columns ({}):", cols.len());
        for c in cols {
            let top = if c.top.is_empty() {
                String::new()
            } else {
                let shown: Vec<String> = c.top.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(
                    " — {}{}",
                    shown.join(", "),
                    if c.n_distinct > c.top.len() {
                        ", …"
                    } else {
                        ""
                    }
                )
            };
            let _ = writeln!(
                o,
                "    {:<24} {:<14} {:>7} distinct{}",
                c.name, c.kind, c.n_distinct, top
            );
        }
    }
    let _ = writeln!(
        o,
        "  obsm: {}",
        if s.obsm.is_empty() {
            "(none)".to_string()
        } else {
            s.obsm
                .iter()
                .map(|(k, sh)| format!("{k} {sh:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        o,
        "  layers: {}",
        if s.layers.is_empty() {
            "(none)".to_string()
        } else {
            s.layers
                .iter()
                .map(|(k, m)| format!("{k} ({}, {})", m.encoding, m.dtype))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        o,
        "  uns: {}",
        if s.uns.is_empty() {
            "(none)".to_string()
        } else {
            s.uns.join(", ")
        }
    );
    o
}
