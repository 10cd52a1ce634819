//! `obs`/`var` tables: an index of names plus ordered, typed columns.

use crate::error::{Error, Result};

/// The type of a categorical's categories on disk (pandas allows any; anndata writes strings
/// and numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CategoryKind {
    /// Strings (the usual case).
    #[default]
    Text,
    /// Integers, held as their decimal text (`"1"`, `"2"`).
    Integer,
    /// Floating-point numbers, held as Rust's shortest round-trip text (`"0.5"`).
    Float,
}

/// One column of an `obs` or `var` table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// A pandas categorical: integer codes (−1 = missing) into `categories`.
    Categorical {
        /// Per-row category code, −1 for missing.
        codes: Vec<i32>,
        /// Category names.
        categories: Vec<String>,
        /// Whether the categories are ordered.
        ordered: bool,
        /// What the categories were in the file (they are held as text either way), so that
        /// integer categories are written back as integers.
        category_kind: CategoryKind,
    },
    /// Strings (pandas object/str dtype). `None` is a missing value (nullable string array).
    String(Vec<Option<String>>),
    /// Floating-point numbers (NaN = missing).
    Float(Vec<f64>),
    /// Integers, with an optional missing-value mask (pandas `Int64`, `true` = missing).
    Int {
        /// Values (unspecified where masked).
        values: Vec<i64>,
        /// `Some(mask)` for a nullable integer column.
        mask: Option<Vec<bool>>,
    },
    /// Booleans, with an optional missing-value mask (pandas `boolean`, `true` = missing).
    Bool {
        /// Values (unspecified where masked).
        values: Vec<bool>,
        /// `Some(mask)` for a nullable boolean column.
        mask: Option<Vec<bool>>,
    },
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical { codes, .. } => codes.len(),
            Column::String(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Int { values, .. } => values.len(),
            Column::Bool { values, .. } => values.len(),
        }
    }
    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A short name of the column's type, as `scssl inspect` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Column::Categorical { .. } => "categorical",
            Column::String(_) => "string",
            Column::Float(_) => "float",
            Column::Int { mask: None, .. } => "int",
            Column::Int { .. } => "nullable int",
            Column::Bool { mask: None, .. } => "bool",
            Column::Bool { .. } => "nullable bool",
        }
    }
    /// Builds a categorical column from strings, categories in sorted order (as pandas does).
    pub fn categorical_from_strings<S: AsRef<str>>(values: &[S]) -> Column {
        let mut cats: Vec<String> = values.iter().map(|s| s.as_ref().to_string()).collect();
        cats.sort();
        cats.dedup();
        let codes = values
            .iter()
            .map(|s| {
                cats.binary_search_by(|c| c.as_str().cmp(s.as_ref()))
                    .map_or(-1, |p| p as i32)
            })
            .collect();
        Column::Categorical {
            codes,
            categories: cats,
            ordered: false,
            category_kind: CategoryKind::Text,
        }
    }
    /// The value of row `i` rendered as text (missing → `None`).
    pub fn value_string(&self, i: usize) -> Option<String> {
        match self {
            Column::Categorical {
                codes, categories, ..
            } => usize::try_from(codes[i])
                .ok()
                .and_then(|c| categories.get(c).cloned()),
            Column::String(v) => v[i].clone(),
            Column::Float(v) => (!v[i].is_nan()).then(|| v[i].to_string()),
            Column::Int { values, mask } => {
                (!mask.as_ref().is_some_and(|m| m[i])).then(|| values[i].to_string())
            }
            Column::Bool { values, mask } => {
                (!mask.as_ref().is_some_and(|m| m[i])).then(|| values[i].to_string())
            }
        }
    }
    /// Keeps the given rows, in order.
    pub fn select(&self, rows: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            Column::Categorical {
                codes,
                categories,
                ordered,
                category_kind,
            } => Column::Categorical {
                codes: pick(codes, rows),
                categories: categories.clone(),
                ordered: *ordered,
                category_kind: *category_kind,
            },
            Column::String(v) => Column::String(pick(v, rows)),
            Column::Float(v) => Column::Float(pick(v, rows)),
            Column::Int { values, mask } => Column::Int {
                values: pick(values, rows),
                mask: mask.as_ref().map(|m| pick(m, rows)),
            },
            Column::Bool { values, mask } => Column::Bool {
                values: pick(values, rows),
                mask: mask.as_ref().map(|m| pick(m, rows)),
            },
        }
    }
}

/// Group codes of a column: each row's group in `0..names.len()` (missing values → error).
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Per-row group code.
    pub codes: Vec<u32>,
    /// Group names; only groups that occur are listed, in category (or sorted) order.
    pub names: Vec<String>,
}

impl Groups {
    /// Number of distinct groups.
    pub fn n_groups(&self) -> usize {
        self.names.len()
    }
    /// Number of rows in each group.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.names.len()];
        for &c in &self.codes {
            s[c as usize] += 1;
        }
        s
    }
}

/// A pandas-like data frame: row names plus ordered columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFrame {
    /// Row names (`obs_names` / `var_names`).
    pub index: Vec<String>,
    /// Name of the index column on disk (anndata writes `_index` unless the index was named).
    pub index_name: String,
    /// Columns in order.
    pub columns: Vec<(String, Column)>,
}

impl DataFrame {
    /// A frame with the given row names and no columns.
    pub fn with_index(index: Vec<String>) -> Self {
        Self {
            index,
            index_name: "_index".into(),
            columns: vec![],
        }
    }
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.index.len()
    }
    /// The column called `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Column> {
        self.columns.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }
    /// The column called `key`, or an error listing the columns that exist.
    pub fn column(&self, key: &str, container: &'static str) -> Result<&Column> {
        self.get(key).ok_or_else(|| Error::MissingKey {
            container,
            key: key.to_string(),
            available: self
                .columns
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
    /// Inserts or replaces a column, checking its length.
    pub fn insert(&mut self, key: impl Into<String>, col: Column) -> Result<()> {
        let key = key.into();
        if col.len() != self.n_rows() {
            return Err(Error::shape(
                format!("column '{key}' length"),
                self.n_rows(),
                col.len(),
            ));
        }
        if let Some(slot) = self.columns.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = col;
        } else {
            self.columns.push((key, col));
        }
        Ok(())
    }
    /// Keeps the given rows, in order.
    pub fn select(&self, rows: &[usize]) -> DataFrame {
        DataFrame {
            index: rows.iter().map(|&r| self.index[r].clone()).collect(),
            index_name: self.index_name.clone(),
            columns: self
                .columns
                .iter()
                .map(|(k, c)| (k.clone(), c.select(rows)))
                .collect(),
        }
    }
    /// The column `key` as group codes. Categorical columns keep their category order (unused
    /// categories dropped); other columns are grouped by their text, sorted. Missing values are an error.
    pub fn groups(&self, key: &str, container: &'static str) -> Result<Groups> {
        let col = self.column(key, container)?;
        let n = col.len();
        let mut text = Vec::with_capacity(n);
        for i in 0..n {
            match col.value_string(i) {
                Some(s) => text.push(s),
                None => {
                    return Err(Error::Format {
                        file: container.into(),
                        key: key.into(),
                        reason: format!("row {i} ('{}') has a missing value", self.index[i]),
                    });
                }
            }
        }
        let order: Vec<String> = match col {
            Column::Categorical { categories, .. } => categories.clone(),
            _ => {
                let mut v = text.clone();
                v.sort();
                v.dedup();
                v
            }
        };
        let present: std::collections::HashSet<&str> = text.iter().map(|s| s.as_str()).collect();
        let names: Vec<String> = order
            .into_iter()
            .filter(|c| present.contains(c.as_str()))
            .collect();
        let lookup: std::collections::HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u32))
            .collect();
        let codes = text.iter().map(|s| lookup[s.as_str()]).collect();
        Ok(Groups { codes, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_category_order_and_drop_unused() {
        let mut df = DataFrame::with_index(vec!["a".into(), "b".into(), "c".into()]);
        df.insert(
            "batch",
            Column::Categorical {
                codes: vec![2, 0, 2],
                categories: vec!["z".into(), "y".into(), "x".into()],
                ordered: false,
                category_kind: CategoryKind::Text,
            },
        )
        .unwrap();
        let g = df.groups("batch", "obs").unwrap();
        assert_eq!(g.names, vec!["z", "x"]);
        assert_eq!(g.codes, vec![1, 0, 1]);
        let err = df.groups("batchx", "obs").unwrap_err().to_string();
        assert!(err.contains("available keys: [batch]"), "{err}");
    }

    #[test]
    fn categorical_from_strings_sorts() {
        let c = Column::categorical_from_strings(&["b", "a", "b"]);
        assert_eq!(
            c,
            Column::Categorical {
                codes: vec![1, 0, 1],
                categories: vec!["a".into(), "b".into()],
                ordered: false,
                category_kind: CategoryKind::Text,
            }
        );
    }
}
