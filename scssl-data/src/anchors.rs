//! Anchor pairs between batches exported from Seurat (`FindIntegrationAnchors`, as CLAIRE's
//! `find_anchors.R` writes them to `seuratAnchors.csv`), mapped to cell indices.
//!
//! The file is a CSV with a header; the columns `name1` and `name2` hold the two cells' names
//! (`obs_names`). Seurat lists every pair in both directions, one direction after the other,
//! so CLAIRE keeps the **first half** of the rows; pairs listed twice are kept once.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};

/// Splits one CSV line into fields (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Reads Seurat anchors from `path` and maps their cell names to indices into `obs_names`:
/// the first half of the rows, duplicates removed, in file order. Unknown cell names are an
/// error that counts them; a file without `name1`/`name2` columns or without rows is an error.
pub fn read_seurat_anchors(path: &Path, obs_names: &[String]) -> Result<Vec<(u32, u32)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_seurat_anchors(&text, &path.display().to_string(), obs_names)
}

/// [`read_seurat_anchors`] on the file's text (`file` names it in errors).
pub fn parse_seurat_anchors(
    text: &str,
    file: &str,
    obs_names: &[String],
) -> Result<Vec<(u32, u32)>> {
    let format = |reason: String| Error::Format {
        file: file.to_string(),
        key: "name1/name2".into(),
        reason,
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(
        lines
            .next()
            .ok_or_else(|| format("the file is empty".into()))?,
    );
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                format(format!(
                    "no column '{name}' (columns: {}); expected Seurat's anchor export with name1 and name2",
                    header.join(", ")
                ))
            })
    };
    let (c1, c2) = (column("name1")?, column("name2")?);
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    if rows.is_empty() {
        return Err(format("the file lists no anchors".into()));
    }
    let index: HashMap<&str, u32> = obs_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let mut unknown: Vec<String> = Vec::new();
    let mut seen_unknown: HashSet<String> = HashSet::new();
    let mut names = HashSet::new();
    let mut pairs = Vec::new();
    let mut kept = HashSet::new();
    let half = rows.len() / 2;
    for (r, row) in rows.iter().enumerate() {
        let (Some(a), Some(b)) = (row.get(c1), row.get(c2)) else {
            return Err(format(format!(
                "row {} has {} fields, the header {}",
                r + 2,
                row.len(),
                header.len()
            )));
        };
        let mut id = |n: &str| {
            names.insert(n.to_string());
            let found = index.get(n).copied();
            if found.is_none() && seen_unknown.insert(n.to_string()) {
                unknown.push(n.to_string());
            }
            found
        };
        let (ia, ib) = (id(a), id(b));
        // Seurat writes both directions; CLAIRE keeps the first half (names are checked in
        // both halves so that a wrong file is caught whole)
        if r < half.max(1)
            && let (Some(ia), Some(ib)) = (ia, ib)
            && kept.insert((ia, ib))
        {
            pairs.push((ia, ib));
        }
    }
    if !unknown.is_empty() {
        return Err(Error::UnknownNames {
            file: file.to_string(),
            what: "anchor cell",
            count: unknown.len(),
            total: names.len(),
            examples: unknown
                .iter()
                .take(3)
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cell{i}")).collect()
    }

    #[test]
    fn first_half_of_seurat_rows_without_duplicates() {
        let text = "\"\",\"cell1\",\"cell2\",\"score\",\"name1\",\"name2\"\n\
                    \"1\",1,4,0.9,\"cell0\",\"cell3\"\n\
                    \"2\",2,5,0.5,\"cell1\",\"cell4\"\n\
                    \"3\",2,5,0.5,\"cell1\",\"cell4\"\n\
                    \"4\",4,1,0.9,\"cell3\",\"cell0\"\n\
                    \"5\",5,2,0.5,\"cell4\",\"cell1\"\n\
                    \"6\",5,2,0.5,\"cell4\",\"cell1\"\n";
        let pairs = parse_seurat_anchors(text, "a.csv", &names(6)).unwrap();
        assert_eq!(pairs, vec![(0, 3), (1, 4)]);
    }

    #[test]
    fn unknown_cells_are_counted() {
        let text = "name1,name2\ncell0,nope1\nnope2,cell1\ncell1,cell0\nnope1,cell0\n";
        let err = parse_seurat_anchors(text, "a.csv", &names(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 of 4 anchor cell names"), "{err}");
        assert!(err.contains("'nope1'") && err.contains("a.csv"), "{err}");
    }

    #[test]
    fn missing_columns_and_empty_files_are_named() {
        let err = parse_seurat_anchors("a,b\n1,2\n", "x.csv", &names(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column 'name1'"), "{err}");
        let err = parse_seurat_anchors("name1,name2\n", "x.csv", &names(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no anchors"), "{err}");
    }
}
