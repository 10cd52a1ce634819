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

/// `progress.json` of a running run: its stage and, while training, the epoch — what the
/// local executor's per-run progress bars show. Removed when the run ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    /// What the run is doing ("loading data", "training", "batch-correction metrics", …).
    pub stage: String,
    /// Epochs finished in the current training.
    pub epoch: usize,
    /// Epochs of the current training (0 outside training).
    pub epochs: usize,
}

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

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, rename;
/// see `scssl_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(scssl_atomic::write_file(path, bytes)?)
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

    /// Writes `progress.json` (atomically; a reader never sees half of it).
    pub fn set_progress(&self, p: &RunProgress) -> Result<()> {
        write_json(&self.path.join("progress.json"), p)
    }

    /// The run's progress, when it is running and has written one.
    pub fn progress(&self) -> Option<RunProgress> {
        read_json(&self.path.join("progress.json")).ok()
    }

    /// Removes `progress.json` (the run ended).
    pub fn clear_progress(&self) {
        let _ = std::fs::remove_file(self.path.join("progress.json"));
    }

    /// Appends `UNIX_TIME HOST PID` to `attempts.txt`: one line each time a process starts
    /// computing this run (under its lock), so a store shows how often a run was attempted —
    /// once, unless it failed or was interrupted and then resumed.
    pub fn record_attempt(&self) -> Result<()> {
        let path = self.path.join("attempts.txt");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // one short write on an O_APPEND file: lines from different processes never interleave
        f.write_all(format!("{:.3} {} {}\n", now(), host_name(), std::process::id()).as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The lines of `attempts.txt` (see [`RunDir::record_attempt`]).
    pub fn attempts(&self) -> Vec<String> {
        std::fs::read_to_string(self.path.join("attempts.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Takes the run's lock (a file created exclusively, holding `HOST PID`). Returns `None`
    /// while another live process holds it.
    ///
    /// A holder on this host is alive while its process exists. A holder on another host (a
    /// Slurm task on another node writing the same shared store) cannot be checked that way, so
    /// every holder refreshes the lock's modification time every [`LOCK_HEARTBEAT`]; a lock
    /// not refreshed for [`LOCK_STALE_AFTER`] is stale and taken over, whoever wrote it.
    pub fn lock(&self) -> Result<Option<RunLock>> {
        self.lock_with_heartbeat(LOCK_HEARTBEAT)
    }

    fn lock_with_heartbeat(&self, heartbeat: std::time::Duration) -> Result<Option<RunLock>> {
        let path = self.path.join("lock");
        let me = host_name();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{me} {}", std::process::id())?;
                    return Ok(Some(RunLock::hold(path, heartbeat)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if lock_holder_alive(&path, &me) {
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

/// How often a lock holder refreshes its lock file.
pub const LOCK_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(20);
/// A lock file not refreshed for this long belongs to a dead holder.
pub const LOCK_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).replace(char::is_whitespace, "_")
}

fn lock_holder_alive(path: &Path, me: &str) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut parts = text.split_whitespace();
    let (host, pid) = match (parts.next(), parts.next()) {
        (Some(h), Some(p)) => (h.to_string(), p.parse::<i32>().unwrap_or(0)),
        // a lock of an older version held only the pid
        (Some(p), None) => (me.to_string(), p.parse::<i32>().unwrap_or(0)),
        _ => (String::new(), 0),
    };
    if host == me {
        // SAFETY: kill with signal 0 only checks that the process exists.
        return pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
    }
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    // an unreadable or just-created lock counts as held
    age.is_none_or(|a| a < LOCK_STALE_AFTER)
}

/// A held run lock: refreshed in the background, released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl RunLock {
    fn hold(path: PathBuf, period: std::time::Duration) -> Self {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (p, s) = (path.clone(), stop.clone());
        let heartbeat = std::thread::Builder::new()
            .name("run-lock-heartbeat".into())
            .spawn(move || {
                let (flag, cv) = &*s;
                let mut stopped = flag
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                while !*stopped {
                    let (g, _) = cv
                        .wait_timeout(stopped, period)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    stopped = g;
                    if !*stopped {
                        let _ = std::fs::File::options()
                            .append(true)
                            .open(&p)
                            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    }
                }
            })
            .ok();
        RunLock {
            path,
            stop,
            heartbeat,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
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
        // a stale lock (dead pid on this host, old or new format) is taken over
        std::fs::write(d.path().join("lock"), "999999999\n").unwrap();
        let l = r.lock().unwrap().expect("dead holder");
        drop(l);
        std::fs::write(
            d.path().join("lock"),
            format!("{} 999999999\n", host_name()),
        )
        .unwrap();
        let l = r.lock().unwrap().expect("dead holder");
        drop(l);
        // another host's lock is held while it is fresh, taken over once stale
        std::fs::write(d.path().join("lock"), "node-elsewhere 1\n").unwrap();
        assert!(r.lock().unwrap().is_none(), "fresh foreign lock");
        let old = std::time::SystemTime::now() - LOCK_STALE_AFTER - LOCK_HEARTBEAT;
        std::fs::File::options()
            .append(true)
            .open(d.path().join("lock"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(r.lock().unwrap().is_some(), "stale foreign lock");
    }

    #[test]
    fn progress_round_trips_and_clears() {
        let d = tempfile::tempdir().unwrap();
        let r = RunDir {
            path: d.path().to_path_buf(),
        };
        assert_eq!(r.progress(), None);
        let p = RunProgress {
            stage: "training".into(),
            epoch: 3,
            epochs: 10,
        };
        r.set_progress(&p).unwrap();
        assert_eq!(r.progress(), Some(p));
        r.clear_progress();
        assert_eq!(r.progress(), None);
    }

    #[test]
    fn a_held_lock_is_refreshed() {
        let d = tempfile::tempdir().unwrap();
        let r = RunDir {
            path: d.path().to_path_buf(),
        };
        let l = r
            .lock_with_heartbeat(std::time::Duration::from_millis(20))
            .unwrap()
            .expect("free");
        let old = std::time::SystemTime::now() - LOCK_STALE_AFTER * 2;
        let f = std::fs::File::options()
            .append(true)
            .open(d.path().join("lock"))
            .unwrap();
        f.set_modified(old).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let age = std::fs::metadata(d.path().join("lock"))
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default();
        assert!(age < LOCK_STALE_AFTER, "lock not refreshed: {age:?} old");
        let text = std::fs::read_to_string(d.path().join("lock")).unwrap();
        assert!(text.starts_with(&host_name()), "{text}");
        // dropping joins the heartbeat thread promptly and removes the file
        let t = std::time::Instant::now();
        drop(l);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(!d.path().join("lock").exists());
    }
}
