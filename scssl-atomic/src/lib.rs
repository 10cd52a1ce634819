//! Outputs that are never half-written: everything is written under a hidden temporary name
//! next to its destination, flushed to disk, then renamed into place. The one implementation
//! used by AnnData writes (`scssl-data`), model checkpoints (`scssl-models`) and the result
//! store (`scssl-bench`); a crate of its own because `scssl-models` may not depend on
//! `scssl-data`.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("scores.json");
//! scssl_atomic::write_file(&out, b"{}").unwrap();
//! assert_eq!(std::fs::read(&out).unwrap(), b"{}");
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file-system operation failed; names the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or directory.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error {
        path: path.into(),
        source,
    }
}

/// A hidden, unique temporary name next to `path` that keeps its extension last, so that the
/// format is still recognised: `dir/a.h5ad` → `dir/.a.tmp-<host>-<pid>-<n>.h5ad`. The host
/// name is part of it because processes on two nodes of a shared file system may have the
/// same process id.
pub fn temp_sibling(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name.as_str(), ""),
    };
    let tag = format!(
        "tmp-{}-{}-{}",
        host_name(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(format!(".{stem}.{tag}{ext}"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Removes a file or a directory tree; a path that does not exist is not an error.
pub fn remove_path(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(p, e)),
        _ => Ok(()),
    }
}

/// Moves the finished `tmp` onto `dst`. For a file this is one atomic rename; a directory
/// (a zarr store, a checkpoint) that already exists is moved aside first and removed after,
/// so `dst` is at every moment either the old or the new one, complete.
pub fn replace(tmp: &Path, dst: &Path) -> Result<()> {
    if dst.is_dir() {
        let old = temp_sibling(dst);
        std::fs::rename(dst, &old).map_err(|e| io_error(dst, e))?;
        std::fs::rename(tmp, dst).map_err(|e| io_error(dst, e))?;
        remove_path(&old)
    } else {
        std::fs::rename(tmp, dst).map_err(|e| io_error(dst, e))
    }
}

/// Writes and flushes `bytes` to `path` exactly (no temporary name): for files inside a
/// temporary directory that [`replace`] moves into place as a whole.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
    f.write_all(bytes).map_err(|e| io_error(path, e))?;
    f.sync_all().map_err(|e| io_error(path, e))
}

/// Writes `bytes` to `path` atomically: a temporary sibling, flushed, renamed over `path`.
/// The parent directory is created when missing; on failure nothing is left behind.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let tmp = temp_sibling(path);
    let result = write_synced(&tmp, bytes).and_then(|()| replace(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_hidden_unique_and_keep_the_extension() {
        let a = temp_sibling(Path::new("/d/data.h5ad"));
        let b = temp_sibling(Path::new("/d/data.h5ad"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".data.tmp-") && name.ends_with(".h5ad"),
            "{name}"
        );
        let plain = temp_sibling(Path::new("model"));
        assert!(plain.to_string_lossy().starts_with(".model.tmp-"));
    }

    #[test]
    fn write_file_replaces_whole_files_and_directories_swap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let store = dir.path().join("s.zarr");
        std::fs::create_dir(&store).unwrap();
        std::fs::write(store.join("old"), b"").unwrap();
        let tmp = temp_sibling(&store);
        std::fs::create_dir(&tmp).unwrap();
        std::fs::write(tmp.join("new"), b"").unwrap();
        replace(&tmp, &store).unwrap();
        assert!(store.join("new").exists() && !store.join("old").exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "only sub/ and s.zarr remain");
    }
}
