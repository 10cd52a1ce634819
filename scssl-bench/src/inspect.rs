//! `scssl inspect`: a human-readable summary of an AnnData file.

use std::fmt::Write;

use scssl_data::io::FileSummary;

/// Renders a summary as text.
pub fn render(s: &FileSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", s.file);
    let describe = |m: &scssl_data::io::MatrixInfo| {
        format!(
            "{} cells × {} genes, {} ({}){}",
            m.shape.0,
            m.shape.1,
            m.encoding,
            m.dtype,
            m.nnz
                .map(|n| format!(
                    ", {n} stored values ({:.1}% dense)",
                    100.0 * n as f64 / ((m.shape.0 * m.shape.1).max(1)) as f64
                ))
                .unwrap_or_default()
        )
    };
    match &s.x {
        Some(x) => {
            let _ = writeln!(o, "  X: {}", describe(x));
        }
        None => {
            let _ = writeln!(
                o,
                "  X: none ({} cells × {} genes of annotations; eval and annotate use obsm, preprocess and train need --counts-layer)",
                s.n_obs, s.n_vars
            );
        }
    }
    if let Some(raw) = &s.raw {
        let _ = writeln!(o, "  raw/X: {}", describe(raw));
    }
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
    if !s.obsp.is_empty() {
        let _ = writeln!(
            o,
            "  obsp: {}",
            s.obsp
                .iter()
                .map(|(k, m)| format!("{k} ({}, {})", m.encoding, m.dtype))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
