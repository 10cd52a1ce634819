//! Gene programmes (gene sets) in the GMT format MSigDB ships: one set per line, tab-separated
//! `name  description  gene1  gene2 …`.
//!
//! [`read_gmt`] parses a file (blank lines and `#` comments are skipped; a set needs a name and
//! at least one gene), [`write_gmt`] writes one atomically, and [`GenePrograms::encode`] maps
//! the sets onto a dataset's genes for gene-programme masking (Richter et al. 2024). Genes are
//! matched case-insensitively, as the reference (`ssl_in_scg`'s `read_gmt`) upper-cases both.
//!
//! ```
//! use scssl_data::gmt::{GeneSet, GenePrograms};
//! let sets = vec![
//!     GeneSet::new("TCELL", ["CD3E", "CD3D", "NOTME"]),
//!     GeneSet::new("BCELL", ["MS4A1"]),
//! ];
//! let genes = ["cd3e", "MS4A1", "CD3D", "LYZ"].map(String::from);
//! let programs = GenePrograms::encode(&sets, &genes).unwrap();
//! assert_eq!(programs.sets[0].genes, vec![0, 2]);
//! assert_eq!(programs.matched_genes, 3);
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One gene set of a GMT file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneSet {
    /// The set's name (first field).
    pub name: String,
    /// Its description or URL (second field; may be empty).
    pub description: String,
    /// Gene symbols, in file order.
    pub genes: Vec<String>,
}

impl GeneSet {
    /// A set with an empty description.
    pub fn new<S: Into<String>>(name: &str, genes: impl IntoIterator<Item = S>) -> GeneSet {
        GeneSet {
            name: name.to_string(),
            description: String::new(),
            genes: genes.into_iter().map(Into::into).collect(),
        }
    }
}

fn format_error(path: &Path, line: usize, reason: impl Into<String>) -> Error {
    Error::Format {
        file: path.display().to_string(),
        key: format!("line {line}"),
        reason: reason.into(),
    }
}

/// Reads a GMT file. Errors name the file and line: a line with fewer than three tab-separated
/// fields (name, description, one gene), an empty set name, or a file with no set at all.
pub fn read_gmt(path: impl AsRef<Path>) -> Result<Vec<GeneSet>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_gmt(&text, path)
}

/// Parses GMT text (`path` only names the source in errors).
pub fn parse_gmt(text: &str, path: &Path) -> Result<Vec<GeneSet>> {
    let mut sets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            return Err(format_error(
                path,
                i + 1,
                format!(
                    "expected tab-separated `name  description  gene…` with at least one gene, found {} field(s)",
                    fields.len()
                ),
            ));
        }
        let name = fields[0].trim();
        if name.is_empty() {
            return Err(format_error(path, i + 1, "the gene set has no name"));
        }
        let genes: Vec<String> = fields[2..]
            .iter()
            .map(|g| g.trim())
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        if genes.is_empty() {
            return Err(format_error(
                path,
                i + 1,
                format!("gene set {name:?} lists no genes"),
            ));
        }
        sets.push(GeneSet {
            name: name.to_string(),
            description: fields[1].trim().to_string(),
            genes,
        });
    }
    if sets.is_empty() {
        return Err(format_error(path, 0, "the file holds no gene set"));
    }
    Ok(sets)
}

/// Writes `sets` as GMT, atomically (temporary file, then rename).
pub fn write_gmt(path: impl AsRef<Path>, sets: &[GeneSet]) -> Result<()> {
    let path = path.as_ref();
    let mut text = String::new();
    for s in sets {
        for field in std::iter::once(&s.name)
            .chain(std::iter::once(&s.description))
            .chain(&s.genes)
        {
            if field.contains(['\t', '\n', '\r']) {
                return Err(Error::param(
                    "gene set",
                    format!("{field:?} (in set {:?}) contains a tab or newline", s.name),
                ));
            }
        }
        text.push_str(&s.name);
        text.push('\t');
        text.push_str(&s.description);
        for g in &s.genes {
            text.push('\t');
            text.push_str(g);
        }
        text.push('\n');
    }
    scssl_atomic::write_file(path, text.as_bytes())?;
    Ok(())
}

/// A gene set mapped onto a dataset's genes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedSet {
    /// The set's name.
    pub name: String,
    /// Column indices of its genes that the dataset has, ascending.
    pub genes: Vec<usize>,
}

/// Gene programmes encoded against a gene list: the sets with at least one matching gene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GenePrograms {
    /// The sets kept (those with a matching gene), in file order.
    pub sets: Vec<EncodedSet>,
    /// Number of sets in the file.
    pub total_sets: usize,
    /// Distinct genes named in the file.
    pub file_genes: usize,
    /// Distinct dataset genes covered by at least one kept set.
    pub matched_genes: usize,
}

impl GenePrograms {
    /// Maps `sets` onto `genes` (case-insensitive). Sets without a matching gene are dropped;
    /// when no set matches, the error says how many of the file's genes the data has (none)
    /// and shows examples of both vocabularies, so a symbol-versus-Ensembl mismatch is obvious.
    pub fn encode(sets: &[GeneSet], genes: &[String]) -> Result<GenePrograms> {
        let index: HashMap<String, usize> = genes
            .iter()
            .enumerate()
            .map(|(j, g)| (g.to_uppercase(), j))
            .rev() // the first occurrence of a duplicated name wins
            .collect();
        let mut file_genes = std::collections::HashSet::new();
        let mut covered = vec![false; genes.len()];
        let mut kept = Vec::new();
        for s in sets {
            let mut cols: Vec<usize> = s
                .genes
                .iter()
                .filter_map(|g| {
                    let key = g.to_uppercase();
                    let hit = index.get(&key).copied();
                    file_genes.insert(key);
                    hit
                })
                .collect();
            cols.sort_unstable();
            cols.dedup();
            if cols.is_empty() {
                continue;
            }
            for &c in &cols {
                covered[c] = true;
            }
            kept.push(EncodedSet {
                name: s.name.clone(),
                genes: cols,
            });
        }
        let matched = covered.iter().filter(|c| **c).count();
        if kept.is_empty() {
            let example = |v: Vec<&str>| v.into_iter().take(3).collect::<Vec<_>>().join(", ");
            return Err(Error::shape(
                "gene programmes against the data's genes",
                format!("at least one of the file's {} genes", file_genes.len()),
                format!(
                    "0 of {} genes matched {} data genes (file genes e.g. {}; data genes e.g. {})",
                    file_genes.len(),
                    genes.len(),
                    example(
                        sets.iter()
                            .flat_map(|s| &s.genes)
                            .map(String::as_str)
                            .collect()
                    ),
                    example(genes.iter().map(String::as_str).collect()),
                ),
            ));
        }
        Ok(GenePrograms {
            sets: kept,
            total_sets: sets.len(),
            file_genes: file_genes.len(),
            matched_genes: matched,
        })
    }

    /// One line for logs: how many sets and genes matched.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} gene programmes kept; {} data genes covered ({} distinct genes in the file)",
            self.sets.len(),
            self.total_sets,
            self.matched_genes,
            self.file_genes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sets.gmt");
        let sets = vec![
            GeneSet::new("A", ["g1", "g2"]),
            GeneSet {
                name: "B".into(),
                description: "http://x".into(),
                genes: vec!["g3".into()],
            },
        ];
        write_gmt(&p, &sets).unwrap();
        assert_eq!(read_gmt(&p).unwrap(), sets);
        let text = "# comment\n\nA\t\tg1\tg2\t\r\nB\thttp://x\tg3\n";
        assert_eq!(parse_gmt(text, &p).unwrap(), sets);
    }

    #[test]
    fn bad_lines_name_the_line() {
        let p = Path::new("x.gmt");
        let e = parse_gmt("A\tdesc\tg1\nB desc g2\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("x.gmt"), "{e}");
        let e = parse_gmt("A\tdesc\t\t\n", p).unwrap_err().to_string();
        assert!(e.contains("no genes"), "{e}");
        let e = parse_gmt("# only a comment\n", p).unwrap_err().to_string();
        assert!(e.contains("no gene set"), "{e}");
        assert!(write_gmt("y.gmt", &[GeneSet::new("a\tb", ["g"])]).is_err());
    }

    #[test]
    fn encoding_counts_matches_and_errors_when_none_match() {
        let sets = vec![
            GeneSet::new("A", ["G1", "g2", "missing"]),
            GeneSet::new("B", ["nothing"]),
            GeneSet::new("C", ["G2"]),
        ];
        let genes: Vec<String> = ["g2", "g1", "g3"].map(String::from).to_vec();
        let p = GenePrograms::encode(&sets, &genes).unwrap();
        assert_eq!(p.sets.len(), 2);
        assert_eq!(p.sets[0].genes, vec![0, 1]);
        assert_eq!(p.sets[1].name, "C");
        assert_eq!((p.total_sets, p.file_genes, p.matched_genes), (3, 4, 2));
        let e = GenePrograms::encode(&sets[1..2], &genes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 of 1 genes matched 3 data genes"), "{e}");
    }
}
