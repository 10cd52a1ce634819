//! The result store: one directory per run (`RESULTS/runs/<id>/`) holding the resolved config,
//! a status file, the embedding, metrics, training curve, timings, peak memory and versions.
//! Every file is written under a temporary name and renamed; a lock file keeps two processes
//! from running the same directory at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;

/// State of a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Config written, not started.
    Pending,
    /// A process is (or was, if it died) working on it.
    Running,
    /// Finished; results complete.
    Done,
    /// Failed; `error` says why. Never scored.
    Failed,
}

/// `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// State.
    pub state: RunState,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Seconds since the Unix epoch when the state was written.
    pub updated: f64,
    /// Process id that wrote it.
    pub pid: u32,
}

/// Paths of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        path.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    ));
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// Writes JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(v)?)
}

/// Reads JSON.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A `.npy` (format 1.0, little-endian f32, C order) of `x`, as numpy writes it.
pub fn npy_bytes(x: &Array2<f32>) -> Vec<u8> {
    let (r, c) = x.dim();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({r}, {c}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * r * c);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in x.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

impl RunDir {
    /// The directory of `run` under `results`.
    pub fn of(results: &Path, run: &RunConfig) -> RunDir {
        RunDir {
            path: results.join("runs").join(run.id()),
        }
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// Reads the run's config.
    pub fn config(&self) -> Result<RunConfig> {
        read_json(&self.config_path())
    }

    /// Creates the directory and writes the config if it is not there yet.
    pub fn prepare(&self, run: &RunConfig) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        if !self.config_path().exists() {
            write_json(&self.config_path(), run)?;
            self.set_status(RunState::Pending, None)?;
        }
        Ok(())
    }

    /// The current status (`Pending` when none was written).
    pub fn status(&self) -> RunStatus {
        read_json(&self.path.join("status.json")).unwrap_or(RunStatus {
            state: RunState::Pending,
            error: None,
            updated: 0.0,
            pid: 0,
        })
    }

    /// Writes the status.
    pub fn set_status(&self, state: RunState, error: Option<String>) -> Result<()> {
        write_json(
            &self.path.join("status.json"),
            &RunStatus {
                state,
                error,
                updated: now(),
                pid: std::process::id(),
            },
        )
    }

    /// Takes the run's lock (a file created exclusively). A lock left by a dead process is
    /// taken over. Returns `None` when a live process holds it.
    pub fn lock(&self) -> Result<Option<RunLock>> {
        let path = self.path.join("lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())?;
                    return Ok(Some(RunLock { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid: i32 = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                    // SAFETY: kill with signal 0 only checks that the process exists.
                    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
                    if alive {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
        }
        Ok(None)
    }
}

/// A held run lock; released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every run directory under `results/runs`, sorted by name.
pub fn list_runs(results: &Path) -> Vec<RunDir> {
    let mut out: Vec<RunDir> = std::fs::read_dir(results.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("config.json").exists())
        .map(|e| RunDir { path: e.path() })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Peak resident memory of this process in MB (`getrusage`).
pub fn peak_rss_mb() -> f64 {
    // SAFETY: an all-zero rusage is valid for getrusage to overwrite.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_numpy_format() {
        let x = Array2::from_shape_vec((2, 3), vec![1.0f32, 2., 3., 4., 5., 6.]).unwrap();
        let b = npy_bytes(&x);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert!(
            std::str::from_utf8(&b[10..10 + hl])
                .unwrap()
                .contains("'shape': (2, 3)")
        );
        assert_eq!(b.len(), 10 + hl + 24);
    }

    #[test]
    fn lock_is_exclusive_and_released() {
        let d = tempfile::tempdir().unwrap();
        let r = RunDir {
            path: d.path().to_path_buf(),
        };
        let l = r.lock().unwrap().expect("free");
        assert!(r.lock().unwrap().is_none(), "held by this live process");
        drop(l);
        assert!(r.lock().unwrap().is_some());
        // a stale lock (dead pid) is taken over
        std::fs::write(d.path().join("lock"), "999999999\n").unwrap();
        assert!(r.lock().unwrap().is_some());
    }
}
