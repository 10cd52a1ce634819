//! System dependencies: the HDF5 C library and pkg-config, needed to build `.h5ad` support.

use std::path::Path;
use std::process::Command;

use crate::Result;

fn hdf5_present() -> bool {
    if std::env::var_os("HDF5_DIR").is_some() {
        return true;
    }
    let pkg = Command::new("pkg-config")
        .args(["--exists", "hdf5"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    pkg || Path::new("/usr/include/hdf5/serial/hdf5.h").exists()
        || Path::new("/usr/include/hdf5.h").exists()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes sure HDF5 can be linked: installs `libhdf5-dev pkg-config` with apt when running as
/// root on Debian/Ubuntu, otherwise says exactly what to run.
pub fn ensure() -> Result {
    let pkg_config = Command::new("pkg-config").arg("--version").output().is_ok();
    if hdf5_present() && pkg_config {
        return Ok(());
    }
    let apt = Path::new("/usr/bin/apt-get").exists();
    if apt && is_root() {
        println!("installing libhdf5-dev and pkg-config with apt-get…");
        let ok = Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let ok = ok
            && Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "libhdf5-dev",
                    "pkg-config",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if ok && hdf5_present() {
            return Ok(());
        }
        return Err(
            "apt-get could not install libhdf5-dev pkg-config; install them and run again".into(),
        );
    }
    let how = if apt {
        "sudo apt-get install -y libhdf5-dev pkg-config"
    } else if Path::new("/usr/bin/dnf").exists() {
        "sudo dnf install -y hdf5-devel pkgconf-pkg-config"
    } else if cfg!(target_os = "macos") {
        "brew install hdf5 pkg-config"
    } else {
        "install the HDF5 development files and pkg-config with your package manager (or set HDF5_DIR)"
    };
    Err(format!(
        "the HDF5 C library (needed to read and write .h5ad) or pkg-config is missing.\nRun:\n    {how}\nthen run this command again."
    ))
}
