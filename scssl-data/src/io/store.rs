//! A minimal hierarchical-store abstraction shared by the HDF5 and zarr backends:
//! groups with JSON-like attributes, and typed n-dimensional arrays.

use std::ops::Range;

use serde_json::{Map, Value};

use crate::error::Result;

/// A typed, owned, flat array as read from a store (row-major).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

/// Borrowed data to write.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub enum DataRef<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I8(&'a [i8]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U32(&'a [u32]),
    Bool(&'a [bool]),
    Str(&'a [String]),
}

impl DataRef<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            DataRef::F32(v) => v.len(),
            DataRef::F64(v) => v.len(),
            DataRef::I8(v) => v.len(),
            DataRef::I32(v) => v.len(),
            DataRef::I64(v) => v.len(),
            DataRef::U32(v) => v.len(),
            DataRef::Bool(v) => v.len(),
            DataRef::Str(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! convert_numeric {
    ($self:expr, $t:ty) => {
        match $self {
            Data::F32(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::F64(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::I8(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::I16(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::I32(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::I64(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::U8(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::U16(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::U32(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::U64(v) => Some(v.into_iter().map(|x| x as $t).collect()),
            Data::Bool(v) => Some(v.into_iter().map(|x| x as u8 as $t).collect()),
            Data::Str(_) => None,
        }
    };
}

impl Data {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::I16(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::U16(v) => v.len(),
            Data::U32(v) => v.len(),
            Data::U64(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A short dtype name for messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            Data::F32(_) => "float32",
            Data::F64(_) => "float64",
            Data::I8(_) => "int8",
            Data::I16(_) => "int16",
            Data::I32(_) => "int32",
            Data::I64(_) => "int64",
            Data::U8(_) => "uint8",
            Data::U16(_) => "uint16",
            Data::U32(_) => "uint32",
            Data::U64(_) => "uint64",
            Data::Bool(_) => "bool",
            Data::Str(_) => "string",
        }
    }
    /// Whether the values are integers (signed or unsigned).
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            Data::I8(_)
                | Data::I16(_)
                | Data::I32(_)
                | Data::I64(_)
                | Data::U8(_)
                | Data::U16(_)
                | Data::U32(_)
                | Data::U64(_)
        )
    }
    /// Converts numbers to `f32` (no-op for `f32`); `None` for strings.
    pub fn into_f32(self) -> Option<Vec<f32>> {
        if let Data::F32(v) = self {
            return Some(v);
        }
        convert_numeric!(self, f32)
    }
    /// Converts numbers to `f64`; `None` for strings.
    pub fn into_f64(self) -> Option<Vec<f64>> {
        if let Data::F64(v) = self {
            return Some(v);
        }
        convert_numeric!(self, f64)
    }
    /// Converts numbers to `i64`; `None` for strings.
    pub fn into_i64(self) -> Option<Vec<i64>> {
        if let Data::I64(v) = self {
            return Some(v);
        }
        convert_numeric!(self, i64)
    }
    /// Converts to booleans (non-zero = true); `None` for strings.
    pub fn into_bool(self) -> Option<Vec<bool>> {
        match self {
            Data::Bool(v) => Some(v),
            other => other
                .into_f64()
                .map(|v| v.into_iter().map(|x| x != 0.0).collect()),
        }
    }
    /// Strings; `None` for numbers.
    pub fn into_strings(self) -> Option<Vec<String>> {
        match self {
            Data::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// Whether a path names a group or an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A group (HDF5 group, zarr group).
    Group,
    /// An array (HDF5 dataset, zarr array).
    Array,
}

/// The operations the AnnData encoding layer needs from a storage backend.
/// Paths are `/`-separated and relative to the root (`""` is the root).
pub trait Store {
    /// The file or store, for messages.
    fn file(&self) -> &str;
    /// What `path` is, or `None` if it does not exist.
    fn node(&self, path: &str) -> Result<Option<NodeKind>>;
    /// Names of a group's members, sorted.
    fn children(&self, path: &str) -> Result<Vec<String>>;
    /// Attributes of a node as JSON values.
    fn attrs(&self, path: &str) -> Result<Map<String, Value>>;
    /// Names of every attribute of a node, including those [`Store::attrs`] cannot represent
    /// as JSON (an HDF5 object reference, as anndata 0.7 wrote for legacy categoricals).
    fn attr_names(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.attrs(path)?.keys().cloned().collect())
    }
    /// Shape of an array.
    fn shape(&self, path: &str) -> Result<Vec<usize>>;
    /// Reads an array, optionally only the given range along axis 0.
    fn read(&self, path: &str, rows: Option<Range<usize>>) -> Result<Data>;
    /// Creates a group with attributes (replacing nothing: the path must be free).
    fn create_group(&self, path: &str, attrs: &Map<String, Value>) -> Result<()>;
    /// Writes an array of the given shape with attributes.
    fn write(
        &self,
        path: &str,
        data: DataRef<'_>,
        shape: &[usize],
        attrs: &Map<String, Value>,
    ) -> Result<()>;
    /// Creates an empty one-dimensional numeric array that [`Store::append`] extends: for
    /// arrays whose length is unknown until they have been streamed (a CSR matrix's `data`
    /// and `indices`). `dtype` is an empty slice of the element type.
    fn create_appendable(
        &self,
        path: &str,
        dtype: DataRef<'_>,
        attrs: &Map<String, Value>,
    ) -> Result<()>;
    /// Appends values to an array made by [`Store::create_appendable`].
    fn append(&self, path: &str, data: DataRef<'_>) -> Result<()>;
    /// Ends the appends to `path`: after this the array holds everything appended (zarr
    /// writes its last, partial chunk and its length here).
    fn end_append(&self, path: &str) -> Result<()>;
    /// Removes a node and everything below it.
    fn remove(&self, path: &str) -> Result<()>;
    /// Makes every write durable (and, for zarr, refreshes consolidated metadata).
    fn finish(&self) -> Result<()>;
}

/// Joins path components.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// A write's data must fill its shape exactly (`n_elems` values), whatever the backend.
#[cfg(any(feature = "h5ad", feature = "zarr"))]
pub(crate) fn check_write_len(
    file: &str,
    key: &str,
    data: &DataRef<'_>,
    n_elems: usize,
) -> Result<()> {
    let len = data.len();
    if len != n_elems {
        return Err(crate::error::Error::shape(
            format!("{file}: data for '{key}'"),
            n_elems,
            len,
        ));
    }
    Ok(())
}

/// Refuses to read an element whose declared size cannot be in memory: a damaged or crafted
/// file may declare 10^12 cells, and allocating that aborts the process instead of failing.
/// The limit is the machine's physical memory (or 2^40 bytes where it cannot be read).
#[cfg(any(feature = "h5ad", feature = "zarr"))]
pub(crate) fn check_declared_size(
    file: &str,
    key: &str,
    shape: &[usize],
    elem_bytes: usize,
) -> Result<()> {
    let bytes = shape
        .iter()
        .try_fold(elem_bytes.max(1) as u128, |acc, &d| {
            acc.checked_mul(d as u128)
        })
        .unwrap_or(u128::MAX);
    let limit = physical_memory().unwrap_or(1 << 40) as u128;
    if bytes > limit {
        return Err(crate::error::Error::Format {
            file: file.into(),
            key: key.into(),
            reason: format!(
                "declares shape {shape:?} ({:.1} GB), more than this machine's memory ({:.1} GB): the file is damaged, or too large to read whole",
                bytes as f64 / 1e9,
                limit as f64 / 1e9
            ),
        });
    }
    Ok(())
}

#[cfg(any(feature = "h5ad", feature = "zarr"))]
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
