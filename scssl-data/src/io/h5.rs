//! HDF5 backend (`hdf5-metno` over the system HDF5 library).

use std::ops::Range;
use std::str::FromStr;

use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, File, Location};
use serde_json::{Map, Value};

use super::store::{Data, DataRef, NodeKind, Store};
use crate::error::{Error, Result};

/// An open `.h5ad` file.
pub struct H5Store {
    file: File,
    name: String,
}

/// HDF5 opens files without `O_CLOEXEC`, so a child process started by another thread while
/// a file is open inherits the descriptor — and with it HDF5's file lock, which then makes the
/// file unreadable for that child (`unable to lock file`). Marks our descriptors of `path`
/// close-on-exec right after opening.
#[cfg(target_os = "linux")]
fn close_on_exec(path: &std::path::Path) {
    let Ok(target) = std::fs::canonicalize(path) else {
        return;
    };
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for e in fds.flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() != Some(target.as_path()) {
            continue;
        }
        if let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() {
            // SAFETY: fcntl on a descriptor number only reads/sets its flags; a descriptor
            // that was closed meanwhile makes the call fail harmlessly with EBADF.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn close_on_exec(_path: &std::path::Path) {}

impl H5Store {
    /// Opens an existing file read-only.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(Error::Io {
                path: path.into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let file = File::open(path).map_err(|e| Error::Format {
            file: name.clone(),
            key: "/".into(),
            reason: format!("not a readable HDF5 file (truncated or corrupt?): {e}"),
        })?;
        close_on_exec(path);
        Ok(Self { file, name })
    }
    /// Opens an existing file for reading and writing.
    pub fn open_rw(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open_rw(path).map_err(|e| Error::Format {
            file: name.clone(),
            key: "/".into(),
            reason: format!("cannot open HDF5 file for writing: {e}"),
        })?;
        close_on_exec(path);
        Ok(Self { file, name })
    }
    /// Creates (truncates) a file.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| Error::Storage {
            file: name.clone(),
            key: "/".into(),
            message: e.to_string(),
        })?;
        close_on_exec(path);
        Ok(Self { file, name })
    }

    fn err(&self, key: &str, e: impl std::fmt::Display) -> Error {
        Error::Storage {
            file: self.name.clone(),
            key: key.to_string(),
            message: e.to_string(),
        }
    }

    fn location(&self, path: &str) -> Result<Location> {
        if path.is_empty() {
            return Ok((*self.file.group("/").map_err(|e| self.err(path, e))?).clone());
        }
        match self.node(path)? {
            Some(NodeKind::Group) => {
                Ok((*self.file.group(path).map_err(|e| self.err(path, e))?).clone())
            }
            Some(NodeKind::Array) => {
                Ok((**self.file.dataset(path).map_err(|e| self.err(path, e))?).clone())
            }
            None => Err(Error::Format {
                file: self.name.clone(),
                key: path.into(),
                reason: "element does not exist".into(),
            }),
        }
    }

    fn parent_and_name<'a>(&self, path: &'a str) -> Result<(hdf5::Group, &'a str)> {
        let (parent, name) = match path.rfind('/') {
            Some(p) => (&path[..p], &path[p + 1..]),
            None => ("", path),
        };
        let g = if parent.is_empty() {
            self.file.group("/").map_err(|e| self.err(path, e))?
        } else {
            self.file.group(parent).map_err(|e| self.err(parent, e))?
        };
        Ok((g, name))
    }
}

fn read_container(
    c: &Container,
    rows: Option<Range<usize>>,
    key: &str,
    file: &str,
) -> Result<Data> {
    let err = |e: hdf5::Error| Error::Storage {
        file: file.into(),
        key: key.into(),
        message: e.to_string(),
    };
    let desc = c.dtype().and_then(|t| t.to_descriptor()).map_err(err)?;
    let shape = c.shape();
    macro_rules! rd {
        ($t:ty) => {{
            match &rows {
                None => {
                    if c.is_scalar() {
                        vec![c.read_scalar::<$t>().map_err(err)?]
                    } else {
                        c.read_raw::<$t>().map_err(err)?
                    }
                }
                Some(r) => {
                    if shape.len() == 1 {
                        c.as_reader()
                            .read_slice_1d::<$t, _>(r.clone())
                            .map_err(err)?
                            .to_vec()
                    } else if shape.len() == 2 {
                        let a = c
                            .as_reader()
                            .read_slice_2d::<$t, _>(ndarray::s![r.clone(), ..])
                            .map_err(err)?;
                        a.iter().cloned().collect()
                    } else {
                        return Err(Error::Format {
                            file: file.into(),
                            key: key.into(),
                            reason: "row ranges need 1-D or 2-D arrays".into(),
                        });
                    }
                }
            }
        }};
    }
    Ok(match desc {
        TypeDescriptor::Float(FloatSize::U4) => Data::F32(rd!(f32)),
        TypeDescriptor::Float(FloatSize::U8) => Data::F64(rd!(f64)),
        TypeDescriptor::Integer(IntSize::U1) => Data::I8(rd!(i8)),
        TypeDescriptor::Integer(IntSize::U2) => Data::I16(rd!(i16)),
        TypeDescriptor::Integer(IntSize::U4) => Data::I32(rd!(i32)),
        TypeDescriptor::Integer(IntSize::U8) => Data::I64(rd!(i64)),
        TypeDescriptor::Unsigned(IntSize::U1) => Data::U8(rd!(u8)),
        TypeDescriptor::Unsigned(IntSize::U2) => Data::U16(rd!(u16)),
        TypeDescriptor::Unsigned(IntSize::U4) => Data::U32(rd!(u32)),
        TypeDescriptor::Unsigned(IntSize::U8) => Data::U64(rd!(u64)),
        TypeDescriptor::Boolean => Data::Bool(rd!(bool)),
        TypeDescriptor::Enum(e)
            if e.members.len() == 2 && e.members.iter().any(|m| m.name == "TRUE") =>
        {
            // h5py's bool enum that hdf5-metno did not map to `bool`: read the integer codes.
            Data::Bool(rd!(i8).into_iter().map(|v| v != 0).collect())
        }
        TypeDescriptor::VarLenUnicode => Data::Str(
            rd!(VarLenUnicode)
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        TypeDescriptor::VarLenAscii => Data::Str(
            rd!(VarLenAscii)
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        other => {
            return Err(Error::Format {
                file: file.into(),
                key: key.into(),
                reason: format!("unsupported HDF5 element type {other}"),
            });
        }
    })
}

fn data_to_json(d: Data, scalar: bool) -> Value {
    let arr: Vec<Value> = match d {
        Data::Str(v) => v.into_iter().map(Value::String).collect(),
        Data::Bool(v) => v.into_iter().map(Value::Bool).collect(),
        Data::F32(v) => v.into_iter().map(|x| serde_json::json!(x)).collect(),
        Data::F64(v) => v.into_iter().map(|x| serde_json::json!(x)).collect(),
        other => other
            .into_i64()
            .unwrap_or_default()
            .into_iter()
            .map(Value::from)
            .collect(),
    };
    if scalar && arr.len() == 1 {
        arr.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(arr)
    }
}

fn vlen(s: &str, file: &str, key: &str) -> Result<VarLenUnicode> {
    VarLenUnicode::from_str(s).map_err(|e| Error::Format {
        file: file.into(),
        key: key.into(),
        reason: format!("string {s:?} cannot be stored in HDF5: {e}"),
    })
}

fn write_attr(loc: &Location, name: &str, v: &Value, file: &str) -> Result<()> {
    let err = |e: hdf5::Error| Error::Storage {
        file: file.into(),
        key: format!("@{name}"),
        message: e.to_string(),
    };
    if loc.attr_names().map_err(err)?.iter().any(|n| n == name) {
        loc.delete_attr(name).map_err(err)?;
    }
    match v {
        Value::String(s) => {
            loc.new_attr::<VarLenUnicode>()
                .create(name)
                .map_err(err)?
                .write_scalar(&vlen(s, file, name)?)
                .map_err(err)?;
        }
        Value::Bool(b) => loc
            .new_attr::<bool>()
            .create(name)
            .map_err(err)?
            .write_scalar(b)
            .map_err(err)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                loc.new_attr::<i64>()
                    .create(name)
                    .map_err(err)?
                    .write_scalar(&i)
                    .map_err(err)?;
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                loc.new_attr::<f64>()
                    .create(name)
                    .map_err(err)?
                    .write_scalar(&f)
                    .map_err(err)?;
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                // h5py stores an empty list as an empty float64 array; anndata reads it back as [].
                loc.new_attr::<f64>().shape([0]).create(name).map_err(err)?;
            } else if items.iter().all(|x| x.is_string()) {
                let vals: Vec<VarLenUnicode> = items
                    .iter()
                    .map(|x| vlen(x.as_str().unwrap_or(""), file, name))
                    .collect::<Result<_>>()?;
                loc.new_attr::<VarLenUnicode>()
                    .shape([vals.len()])
                    .create(name)
                    .map_err(err)?
                    .write_raw(&vals)
                    .map_err(err)?;
            } else if items.iter().all(|x| x.is_i64() || x.is_u64()) {
                let vals: Vec<i64> = items.iter().map(|x| x.as_i64().unwrap_or(0)).collect();
                loc.new_attr::<i64>()
                    .shape([vals.len()])
                    .create(name)
                    .map_err(err)?
                    .write_raw(&vals)
                    .map_err(err)?;
            } else {
                let vals: Vec<f64> = items
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect();
                loc.new_attr::<f64>()
                    .shape([vals.len()])
                    .create(name)
                    .map_err(err)?
                    .write_raw(&vals)
                    .map_err(err)?;
            }
        }
        Value::Null | Value::Object(_) => {
            return Err(Error::Format {
                file: file.into(),
                key: name.into(),
                reason: "attribute values must be scalars or arrays".into(),
            });
        }
    }
    Ok(())
}

impl Store for H5Store {
    fn file(&self) -> &str {
        &self.name
    }

    fn node(&self, path: &str) -> Result<Option<NodeKind>> {
        if path.is_empty() {
            return Ok(Some(NodeKind::Group));
        }
        // Walk the components: `link_exists` on a nested path fails if a parent is missing.
        let mut cur = String::new();
        for part in path.split('/') {
            let parent = if cur.is_empty() {
                "/".to_string()
            } else {
                cur.clone()
            };
            let g = match self.file.group(&parent) {
                Ok(g) => g,
                Err(_) => return Ok(None),
            };
            if !g.link_exists(part) {
                return Ok(None);
            }
            cur = super::store::join(&cur, part);
        }
        if self.file.group(path).is_ok() {
            Ok(Some(NodeKind::Group))
        } else if self.file.dataset(path).is_ok() {
            Ok(Some(NodeKind::Array))
        } else {
            Ok(None)
        }
    }

    fn children(&self, path: &str) -> Result<Vec<String>> {
        let g = self
            .file
            .group(if path.is_empty() { "/" } else { path })
            .map_err(|e| self.err(path, e))?;
        let mut names = g.member_names().map_err(|e| self.err(path, e))?;
        names.sort();
        Ok(names)
    }

    fn attrs(&self, path: &str) -> Result<Map<String, Value>> {
        let loc = self.location(path)?;
        let mut out = Map::new();
        for name in loc.attr_names().map_err(|e| self.err(path, e))? {
            let a = loc
                .attr(&name)
                .map_err(|e| self.err(&format!("{path}@{name}"), e))?;
            let scalar = a.is_scalar();
            match read_container(&a, None, &format!("{path}@{name}"), &self.name) {
                Ok(d) => {
                    out.insert(name, data_to_json(d, scalar));
                }
                Err(e) => tracing::debug!("skipping attribute {path}@{name}: {e}"),
            }
        }
        Ok(out)
    }

    fn shape(&self, path: &str) -> Result<Vec<usize>> {
        Ok(self
            .file
            .dataset(path)
            .map_err(|e| self.err(path, e))?
            .shape())
    }

    fn read(&self, path: &str, rows: Option<Range<usize>>) -> Result<Data> {
        let ds = self.file.dataset(path).map_err(|e| self.err(path, e))?;
        if let Some(r) = &rows {
            let n = ds.shape().first().copied().unwrap_or(0);
            if r.end > n || r.start > r.end {
                return Err(Error::shape(
                    format!("{}: row range of '{path}'", self.name),
                    format!("within 0..{n}"),
                    format!("{r:?}"),
                ));
            }
        }
        read_container(&ds, rows, path, &self.name)
    }

    fn create_group(&self, path: &str, attrs: &Map<String, Value>) -> Result<()> {
        let g = if path.is_empty() {
            self.file.group("/").map_err(|e| self.err(path, e))?
        } else {
            self.file
                .create_group(path)
                .map_err(|e| self.err(path, e))?
        };
        for (k, v) in attrs {
            write_attr(&g, k, v, &self.name)?;
        }
        Ok(())
    }

    fn write(
        &self,
        path: &str,
        data: DataRef<'_>,
        shape: &[usize],
        attrs: &Map<String, Value>,
    ) -> Result<()> {
        let (g, name) = self.parent_and_name(path)?;
        let err = |e: hdf5::Error| Error::Storage {
            file: self.name.clone(),
            key: path.into(),
            message: e.to_string(),
        };
        macro_rules! wr {
            ($t:ty, $v:expr) => {{
                let ds = if shape.is_empty() {
                    g.new_dataset::<$t>().create(name).map_err(err)?
                } else {
                    g.new_dataset::<$t>()
                        .shape(shape.to_vec())
                        .create(name)
                        .map_err(err)?
                };
                if !$v.is_empty() {
                    ds.write_raw($v).map_err(err)?;
                }
                ds
            }};
        }
        let ds = match data {
            DataRef::F32(v) => wr!(f32, v),
            DataRef::F64(v) => wr!(f64, v),
            DataRef::I8(v) => wr!(i8, v),
            DataRef::I32(v) => wr!(i32, v),
            DataRef::I64(v) => wr!(i64, v),
            DataRef::U32(v) => wr!(u32, v),
            DataRef::Bool(v) => wr!(bool, v),
            DataRef::Str(v) => {
                let vals: Vec<VarLenUnicode> = v
                    .iter()
                    .map(|s| vlen(s, &self.name, path))
                    .collect::<Result<_>>()?;
                wr!(VarLenUnicode, &vals[..])
            }
        };
        for (k, v) in attrs {
            write_attr(&ds, k, v, &self.name)?;
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        let (g, name) = self.parent_and_name(path)?;
        g.unlink(name).map_err(|e| self.err(path, e))
    }

    fn finish(&self) -> Result<()> {
        self.file.flush().map_err(|e| self.err("/", e))
    }
}
