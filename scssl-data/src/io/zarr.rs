//! Zarr backend. Reading goes through `zarrs` (Zarr v2 and v3, every codec anndata uses:
//! blosc, zstd, gzip, vlen-utf8, …). Writing produces uncompressed Zarr v2 (or v3 when adding
//! to an existing v3 store), which every anndata version from 0.10 on reads, and keeps the
//! consolidated metadata (`.zmetadata`, or v3's `consolidated_metadata`) in step.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArraySubset};
use zarrs::filesystem::FilesystemStore;
use zarrs::plugin::{ExtensionName, ZarrVersion};

use super::store::{Data, DataRef, NodeKind, Store};

thread_local! {
    /// Set while this thread is inside a guarded zarrs read (see `ZarrStore::read`).
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}
use crate::error::{Error, Result};

/// An AnnData zarr directory store.
pub struct ZarrStore {
    root: PathBuf,
    name: String,
    version: u8,
    storage: Arc<FilesystemStore>,
    /// Arrays being streamed ([`Store::create_appendable`]), by path.
    appending: std::sync::Mutex<std::collections::HashMap<String, Appending>>,
}

/// Elements per chunk of an appended array (4 MB of `f32`).
const APPEND_CHUNK_ELEMS: usize = 1 << 20;

/// An array being streamed: the values that do not yet fill a chunk, as little-endian bytes.
struct Appending {
    dtype: OwnedKind,
    elem_bytes: usize,
    buffer: Vec<u8>,
    chunks_written: usize,
    len: usize,
    attrs: Map<String, Value>,
}

/// The element type of an appended array (an empty [`DataRef`] on demand).
#[derive(Clone, Copy)]
enum OwnedKind {
    F32,
    F64,
    I8,
    I32,
    I64,
}

impl OwnedKind {
    fn as_ref(&self) -> DataRef<'static> {
        match self {
            OwnedKind::F32 => DataRef::F32(&[]),
            OwnedKind::F64 => DataRef::F64(&[]),
            OwnedKind::I8 => DataRef::I8(&[]),
            OwnedKind::I32 => DataRef::I32(&[]),
            OwnedKind::I64 => DataRef::I64(&[]),
        }
    }
}

/// Target uncompressed chunk size in bytes for written arrays.
const CHUNK_BYTES: usize = 16 << 20;

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source: e,
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Format {
                file: path.display().to_string(),
                key: String::new(),
                reason: format!("invalid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let s = serde_json::to_vec_pretty(v).unwrap_or_default();
    std::fs::write(path, s).map_err(|e| io_err(path, e))
}

impl ZarrStore {
    /// Opens an existing store (v2 or v3).
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let version = if path.join(".zgroup").exists() {
            2
        } else if path.join("zarr.json").exists() {
            3
        } else if path.exists() {
            return Err(Error::Format {
                file: name,
                key: "/".into(),
                reason: "not a zarr group (no .zgroup or zarr.json)".into(),
            });
        } else {
            return Err(io_err(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        Self::with_version(path, name, version)
    }

    fn with_version(path: &Path, name: String, version: u8) -> Result<Self> {
        let storage = Arc::new(FilesystemStore::new(path).map_err(|e| Error::Storage {
            file: name.clone(),
            key: "/".into(),
            message: e.to_string(),
        })?);
        Ok(Self {
            root: path.into(),
            name,
            version,
            storage,
            appending: Default::default(),
        })
    }

    /// Creates a new, empty Zarr v2 store (the directory must not exist).
    pub fn create(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        std::fs::create_dir_all(path).map_err(|e| io_err(path, e))?;
        Self::with_version(path, name, 2)
    }

    fn dir(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }

    fn err(&self, key: &str, e: impl std::fmt::Display) -> Error {
        Error::Storage {
            file: self.name.clone(),
            key: key.into(),
            message: e.to_string(),
        }
    }

    fn meta(&self, path: &str) -> Result<Option<Value>> {
        let d = self.dir(path);
        if self.version == 2 {
            if let Some(v) = read_json(&d.join(".zarray"))? {
                return Ok(Some(v));
            }
            read_json(&d.join(".zgroup"))
        } else {
            read_json(&d.join("zarr.json"))
        }
    }

    fn write_node_meta(
        &self,
        path: &str,
        kind: NodeKind,
        array_meta: Value,
        attrs: &Map<String, Value>,
    ) -> Result<()> {
        let d = self.dir(path);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        if self.version == 2 {
            match kind {
                NodeKind::Group => write_json(&d.join(".zgroup"), &json!({"zarr_format": 2}))?,
                NodeKind::Array => write_json(&d.join(".zarray"), &array_meta)?,
            }
            write_json(&d.join(".zattrs"), &Value::Object(attrs.clone()))
        } else {
            let mut m = match kind {
                NodeKind::Group => json!({"zarr_format": 3, "node_type": "group"}),
                NodeKind::Array => array_meta,
            };
            m["attributes"] = Value::Object(attrs.clone());
            write_json(&d.join("zarr.json"), &m)
        }
    }

    /// The array metadata (`.zarray`, or v3's `zarr.json` without attributes) of an
    /// uncompressed array of `data`'s element type.
    fn array_meta(&self, data: &DataRef<'_>, shape: &[usize], chunk_shape: &[usize]) -> Value {
        let (v2_dtype, v3_dtype, fill): (&str, &str, Value) = match data {
            DataRef::F32(_) => ("<f4", "float32", json!(0.0)),
            DataRef::F64(_) => ("<f8", "float64", json!(0.0)),
            DataRef::I8(_) => ("|i1", "int8", json!(0)),
            DataRef::I32(_) => ("<i4", "int32", json!(0)),
            DataRef::I64(_) => ("<i8", "int64", json!(0)),
            DataRef::U32(_) => ("<u4", "uint32", json!(0)),
            DataRef::Bool(_) => ("|b1", "bool", json!(false)),
            DataRef::Str(_) => ("|O", "string", Value::Null),
        };
        let is_str = matches!(data, DataRef::Str(_));
        if self.version == 2 {
            json!({
                "zarr_format": 2, "shape": shape, "chunks": chunk_shape, "dtype": v2_dtype,
                "compressor": null, "fill_value": fill, "order": "C",
                "filters": if is_str { json!([{"id": "vlen-utf8"}]) } else { Value::Null },
                "dimension_separator": ".",
            })
        } else {
            json!({
                "zarr_format": 3, "node_type": "array", "shape": shape, "data_type": v3_dtype,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": if is_str { json!("") } else { fill },
                "codecs": if is_str { json!([{"name": "vlen-utf8"}]) } else { json!([{"name": "bytes", "configuration": {"endian": "little"}}]) },
            })
        }
    }

    /// The file of chunk `c` along axis 0 of an array in directory `d` with `ndim` axes.
    fn chunk_key(&self, d: &Path, c: usize, ndim: usize) -> PathBuf {
        if self.version == 2 {
            if ndim == 0 {
                return d.join("0");
            }
            let mut parts = vec![c.to_string()];
            parts.extend(std::iter::repeat_n("0".to_string(), ndim.saturating_sub(1)));
            d.join(parts.join("."))
        } else {
            let mut p = d.join("c");
            if ndim > 0 {
                p = p.join(c.to_string());
                for _ in 1..ndim {
                    p = p.join("0");
                }
            }
            p
        }
    }

    /// Writes the complete chunks buffered for an appendable array (and, with `last`, the
    /// partial one, padded with zeros, and the array's final length).
    fn flush_append(&self, path: &str, a: &mut Appending, last: bool) -> Result<()> {
        let d = self.dir(path);
        let chunk_bytes = APPEND_CHUNK_ELEMS * a.elem_bytes;
        let mut start = 0;
        while a.buffer.len() - start >= chunk_bytes || (last && start < a.buffer.len()) {
            let end = (start + chunk_bytes).min(a.buffer.len());
            let mut bytes = a.buffer[start..end].to_vec();
            bytes.resize(chunk_bytes, 0);
            let key = self.chunk_key(&d, a.chunks_written, 1);
            if let Some(parent) = key.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
            std::fs::write(&key, bytes).map_err(|e| io_err(&key, e))?;
            a.chunks_written += 1;
            start = end;
        }
        a.buffer.drain(..start);
        if last {
            let meta = self.array_meta(&a.dtype.as_ref(), &[a.len], &[APPEND_CHUNK_ELEMS]);
            self.write_node_meta(path, NodeKind::Array, meta, &a.attrs)?;
        }
        Ok(())
    }

    /// Rebuilds consolidated metadata if the store has it, so readers that trust it see every node.
    fn consolidate(&self) -> Result<()> {
        if self.version == 2 {
            let mut metadata = Map::new();
            let mut stack = vec![String::new()];
            while let Some(p) = stack.pop() {
                let d = self.dir(&p);
                for f in [".zgroup", ".zarray", ".zattrs"] {
                    if let Some(v) = read_json(&d.join(f))? {
                        let key = if p.is_empty() {
                            f.to_string()
                        } else {
                            format!("{p}/{f}")
                        };
                        metadata.insert(key, v);
                    }
                }
                if d.join(".zgroup").exists() {
                    for c in self.children(&p)? {
                        stack.push(super::store::join(&p, &c));
                    }
                }
            }
            write_json(
                &self.root.join(".zmetadata"),
                &json!({"metadata": metadata, "zarr_consolidated_format": 1}),
            )
        } else {
            // Drop v3 consolidated metadata rather than risk a stale copy; zarr then reads each node.
            let p = self.root.join("zarr.json");
            if let Some(mut v) = read_json(&p)?
                && v.get("consolidated_metadata").is_some_and(|c| !c.is_null())
            {
                v["consolidated_metadata"] = Value::Null;
                write_json(&p, &v)?;
            }
            Ok(())
        }
    }
}

fn chunk_rows(shape: &[usize], elem_bytes: usize) -> usize {
    let row: usize = shape.iter().skip(1).product::<usize>().max(1) * elem_bytes.max(1);
    (CHUNK_BYTES / row).clamp(1, shape.first().copied().unwrap_or(1).max(1))
}

fn encode_vlen_utf8(items: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + items.iter().map(|s| s.len() + 4).sum::<usize>());
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for s in items {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

impl ZarrStore {
    fn read_unguarded(&self, path: &str, rows: Option<Range<usize>>) -> Result<Data> {
        // zarrs refuses node names that start with "__" (reserved in zarr v3), but anndata
        // 0.7 kept legacy categories in `obs/__categories/<col>`: open those from their parent
        let array = if path.split('/').any(|c| c.starts_with("__")) {
            let (parent, leaf) = path.rsplit_once('/').unwrap_or(("", path));
            let storage =
                Arc::new(FilesystemStore::new(self.dir(parent)).map_err(|e| self.err(path, e))?);
            Array::open(storage, &format!("/{leaf}"))
        } else {
            Array::open(self.storage.clone(), &format!("/{path}"))
        }
        .map_err(|e| self.err(path, e))?;
        let shape: Vec<u64> = array.shape().to_vec();
        let mut wanted: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        if let (Some(r), Some(first)) = (&rows, wanted.first_mut()) {
            *first = r.end.saturating_sub(r.start);
        }
        // strings: at least their 4-byte length prefix each
        let elem = array.data_type().fixed_size().unwrap_or(4);
        super::store::check_declared_size(&self.name, path, &wanted, elem)?;
        let mut ranges: Vec<Range<u64>> = shape.iter().map(|&s| 0..s).collect();
        if let Some(r) = rows {
            if ranges.is_empty() || r.end as u64 > shape[0] || r.start > r.end {
                return Err(Error::shape(
                    format!("{}: row range of '{path}'", self.name),
                    format!("within 0..{:?}", shape.first()),
                    format!("{r:?}"),
                ));
            }
            ranges[0] = r.start as u64..r.end as u64;
        }
        let subset = ArraySubset::new_with_ranges(&ranges);
        let dt = array
            .data_type()
            .name(ZarrVersion::V3)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        macro_rules! rd {
            ($t:ty) => {
                array
                    .retrieve_array_subset::<Vec<$t>>(&subset)
                    .map_err(|e| self.err(path, e))?
            };
        }
        Ok(match dt.as_str() {
            "float32" => Data::F32(rd!(f32)),
            "float64" => Data::F64(rd!(f64)),
            "int8" => Data::I8(rd!(i8)),
            "int16" => Data::I16(rd!(i16)),
            "int32" => Data::I32(rd!(i32)),
            "int64" => Data::I64(rd!(i64)),
            "uint8" => Data::U8(rd!(u8)),
            "uint16" => Data::U16(rd!(u16)),
            "uint32" => Data::U32(rd!(u32)),
            "uint64" => Data::U64(rd!(u64)),
            "bool" => Data::Bool(rd!(bool)),
            // one decoding thread: a panic in zarrs' string decoder (see `read`) then happens on
            // this thread, where it is caught without printing
            "string" => Data::Str(
                array
                    .retrieve_array_subset_opt::<Vec<String>>(
                        &subset,
                        &zarrs::array::CodecOptions::default().with_concurrent_target(1),
                    )
                    .map_err(|e| self.err(path, e))?,
            ),
            other => {
                return Err(Error::Format {
                    file: self.name.clone(),
                    key: path.into(),
                    reason: format!("unsupported zarr data type '{other}'"),
                });
            }
        })
    }
}

impl Store for ZarrStore {
    fn file(&self) -> &str {
        &self.name
    }

    fn node(&self, path: &str) -> Result<Option<NodeKind>> {
        let d = self.dir(path);
        if self.version == 2 {
            if d.join(".zarray").exists() {
                return Ok(Some(NodeKind::Array));
            }
            if d.join(".zgroup").exists() {
                return Ok(Some(NodeKind::Group));
            }
            Ok(None)
        } else {
            Ok(read_json(&d.join("zarr.json"))?.map(|v| {
                if v.get("node_type").and_then(|t| t.as_str()) == Some("array") {
                    NodeKind::Array
                } else {
                    NodeKind::Group
                }
            }))
        }
    }

    fn children(&self, path: &str) -> Result<Vec<String>> {
        let d = self.dir(path);
        let mut out = vec![];
        for e in std::fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
            let e = e.map_err(|e| io_err(&d, e))?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            if self.node(&super::store::join(path, &n))?.is_some() {
                out.push(n);
            }
        }
        out.sort();
        Ok(out)
    }

    fn attrs(&self, path: &str) -> Result<Map<String, Value>> {
        let v = if self.version == 2 {
            read_json(&self.dir(path).join(".zattrs"))?
        } else {
            self.meta(path)?.and_then(|m| m.get("attributes").cloned())
        };
        Ok(match v {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        })
    }

    fn shape(&self, path: &str) -> Result<Vec<usize>> {
        let m = self
            .meta(path)?
            .ok_or_else(|| self.err(path, "array does not exist"))?;
        Ok(m.get("shape")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as usize)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Reads through zarrs, with a panic inside zarrs turned into an error naming the file and
    /// element: zarrs 0.23's vlen-utf8 decoder indexes out of bounds on a damaged string chunk
    /// (`array_to_bytes/vlen_v2.rs`), and a damaged file must never take the program down.
    ///
    /// The panic is expected and handled, so it is not printed: a panic hook installed once
    /// stays silent on a thread inside this read and hands every other panic to the hook
    /// that was there before.
    fn read(&self, path: &str, rows: Option<Range<usize>>) -> Result<Data> {
        install_quiet_panic_hook();
        let outer = QUIET_PANICS.with(|q| q.replace(true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.read_unguarded(path, rows)
        }));
        QUIET_PANICS.with(|q| q.set(outer));
        match result {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(Error::Format {
                    file: self.name.clone(),
                    key: path.into(),
                    reason: format!("damaged array data (the zarr decoder failed: {what})"),
                })
            }
        }
    }
    fn create_group(&self, path: &str, attrs: &Map<String, Value>) -> Result<()> {
        self.write_node_meta(path, NodeKind::Group, Value::Null, attrs)
    }

    fn write(
        &self,
        path: &str,
        data: DataRef<'_>,
        shape: &[usize],
        attrs: &Map<String, Value>,
    ) -> Result<()> {
        let n_elems: usize = shape.iter().product();
        let size = match data {
            DataRef::F32(_) | DataRef::I32(_) | DataRef::U32(_) => 4,
            DataRef::F64(_) | DataRef::I64(_) => 8,
            DataRef::I8(_) | DataRef::Bool(_) => 1,
            DataRef::Str(_) => 0,
        };
        super::store::check_write_len(&self.name, path, &data, n_elems)?;
        let avg_str = if let DataRef::Str(v) = data {
            v.iter().map(|s| s.len() + 4).sum::<usize>() / v.len().max(1)
        } else {
            0
        };
        let rows_per_chunk = if shape.is_empty() {
            1
        } else {
            chunk_rows(shape, size.max(avg_str))
        };
        let chunk_shape: Vec<usize> = if shape.is_empty() {
            vec![]
        } else {
            let mut c = shape.to_vec();
            c[0] = rows_per_chunk.max(1);
            c.iter().map(|&x| x.max(1)).collect()
        };
        let meta = self.array_meta(&data, shape, &chunk_shape);
        self.write_node_meta(path, NodeKind::Array, meta, attrs)?;
        let d = self.dir(path);
        let row_elems: usize = shape.iter().skip(1).product::<usize>().max(1);
        let n_rows = shape.first().copied().unwrap_or(1);
        let n_chunks = if shape.is_empty() {
            1
        } else {
            n_rows.div_ceil(rows_per_chunk)
        };
        for c in 0..n_chunks {
            let r0 = c * rows_per_chunk;
            // every chunk is stored at full chunk size; the last one is padded with the fill value
            let (a, b) = (
                r0 * row_elems,
                ((r0 + rows_per_chunk).min(n_rows.max(1))) * row_elems,
            );
            let (a, b) = if shape.is_empty() { (0, 1) } else { (a, b) };
            let full = if shape.is_empty() {
                1
            } else {
                rows_per_chunk * row_elems
            };
            macro_rules! bytes_of {
                ($v:expr, $t:ty) => {{
                    let mut out = Vec::with_capacity(full * std::mem::size_of::<$t>());
                    for x in &$v[a..b] {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    out.resize(full * std::mem::size_of::<$t>(), 0);
                    out
                }};
            }
            let bytes = match data {
                DataRef::F32(v) => bytes_of!(v, f32),
                DataRef::F64(v) => bytes_of!(v, f64),
                DataRef::I8(v) => bytes_of!(v, i8),
                DataRef::I32(v) => bytes_of!(v, i32),
                DataRef::I64(v) => bytes_of!(v, i64),
                DataRef::U32(v) => bytes_of!(v, u32),
                DataRef::Bool(v) => {
                    let mut out: Vec<u8> = v[a..b].iter().map(|&x| x as u8).collect();
                    out.resize(full, 0);
                    out
                }
                DataRef::Str(v) => {
                    let mut items = v[a..b].to_vec();
                    items.resize(full, String::new());
                    encode_vlen_utf8(&items)
                }
            };
            let key = self.chunk_key(&d, c, shape.len());
            if let Some(parent) = key.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
            if n_elems > 0 {
                std::fs::write(&key, bytes).map_err(|e| io_err(&key, e))?;
            }
        }
        Ok(())
    }

    fn create_appendable(
        &self,
        path: &str,
        dtype: DataRef<'_>,
        attrs: &Map<String, Value>,
    ) -> Result<()> {
        let (kind, elem_bytes) = match dtype {
            DataRef::F32(_) => (OwnedKind::F32, 4),
            DataRef::F64(_) => (OwnedKind::F64, 8),
            DataRef::I8(_) => (OwnedKind::I8, 1),
            DataRef::I32(_) => (OwnedKind::I32, 4),
            DataRef::I64(_) => (OwnedKind::I64, 8),
            DataRef::U32(_) | DataRef::Bool(_) | DataRef::Str(_) => {
                return Err(self.err(
                    path,
                    "only f32, f64, i8, i32 and i64 arrays can be appended",
                ));
            }
        };
        // an empty array until the appends end, so a reader never sees a wrong length
        let meta = self.array_meta(&dtype, &[0], &[APPEND_CHUNK_ELEMS]);
        self.write_node_meta(path, NodeKind::Array, meta, attrs)?;
        let mut map = self.appending.lock().map_err(|e| self.err(path, e))?;
        map.insert(
            path.to_string(),
            Appending {
                dtype: kind,
                elem_bytes,
                buffer: Vec::new(),
                chunks_written: 0,
                len: 0,
                attrs: attrs.clone(),
            },
        );
        Ok(())
    }

    fn append(&self, path: &str, data: DataRef<'_>) -> Result<()> {
        let mut map = self.appending.lock().map_err(|e| self.err(path, e))?;
        let a = map
            .get_mut(path)
            .ok_or_else(|| self.err(path, "not an array being appended to"))?;
        macro_rules! push {
            ($v:expr) => {{
                for x in $v {
                    a.buffer.extend_from_slice(&x.to_le_bytes());
                }
                $v.len()
            }};
        }
        let n = match (a.dtype, data) {
            (OwnedKind::F32, DataRef::F32(v)) => push!(v),
            (OwnedKind::F64, DataRef::F64(v)) => push!(v),
            (OwnedKind::I8, DataRef::I8(v)) => push!(v),
            (OwnedKind::I32, DataRef::I32(v)) => push!(v),
            (OwnedKind::I64, DataRef::I64(v)) => push!(v),
            _ => {
                return Err(self.err(path, "the appended values are not of the array's type"));
            }
        };
        a.len += n;
        self.flush_append(path, a, false)
    }

    fn end_append(&self, path: &str) -> Result<()> {
        let mut map = self.appending.lock().map_err(|e| self.err(path, e))?;
        let mut a = map
            .remove(path)
            .ok_or_else(|| self.err(path, "not an array being appended to"))?;
        self.flush_append(path, &mut a, true)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let d = self.dir(path);
        std::fs::remove_dir_all(&d).map_err(|e| io_err(&d, e))
    }

    /// Consolidated metadata is always kept in step: v2 stores get a fresh `.zmetadata` (as
    /// anndata's `write_zarr` writes one), v3 stores lose a stale `consolidated_metadata`.
    fn finish(&self) -> Result<()> {
        self.consolidate()
    }
}
