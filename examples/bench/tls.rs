//! The certificates of the `internode-tls` implementation.
//!
//! The parent makes them once per run ([`CertDir::create`], with rcgen through
//! `tests/support/certs.rs`): a CA, and a certificate naming `node-<id>.internode`
//! (the default cluster name) with its key for the sending node and for every server
//! node a receiving process may start, written to a fresh private directory under the
//! system's temporary one, which is removed when the [`CertDir`] is dropped. Every
//! child it starts gets the directory's path in the environment variable [`ENV`]
//! ([`ChildProc::spawn`](crate::child::ChildProc::spawn)); a node of either process
//! loads its own certificate with `TlsConfig::from_pem_files` ([`config`]).

#[path = "../../tests/support/certs.rs"]
#[allow(dead_code)]
mod certs;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use internode::node::TlsConfig;
use internode::NodeId;

use crate::BenchError;

/// The environment variable through which a child learns the certificates'
/// directory.
pub const ENV: &str = "INTERNODE_BENCH_TLS_DIR";
/// The cluster name the certificates are made for (the default).
const CLUSTER: &str = "internode";

/// The directory of this run's certificates: set by the parent, read from [`ENV`]
/// by a child.
static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The certificates' directory, if this run has one.
pub fn dir() -> Option<&'static Path> {
    DIR.get_or_init(|| std::env::var_os(ENV).map(PathBuf::from))
        .as_deref()
}

/// The directory of this run's certificates; removed when dropped.
pub struct CertDir {
    path: PathBuf,
}

impl CertDir {
    /// Makes a CA and the certificates of `ids`, writes them to a fresh directory and
    /// makes it this process's [`dir`]. Called once, before any [`dir`].
    pub fn create(ids: impl IntoIterator<Item = NodeId>) -> Result<CertDir, BenchError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

        let path = std::env::temp_dir().join(format!("internode-bench-tls-{}", std::process::id()));
        let io = |what: &str, path: &Path| {
            let what = format!("{what} {}", path.display());
            move |e| BenchError::io(what, e)
        };
        // A leftover of a killed run with the same process id.
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io("removing", &path))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io("creating", &path))?;
        // From here on, a failure removes the directory.
        let dir = CertDir { path };
        let write = |name: String, text: &str| {
            let file = dir.path.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
                .map_err(io("writing", &file))
        };
        let ca = certs::Ca::new("internode bench CA");
        write("ca.pem".into(), &ca.pem())?;
        for id in ids {
            let cert = ca.node(id.0, CLUSTER);
            write(format!("node-{}.pem", id.0), &cert.cert_pem)?;
            write(format!("node-{}.key", id.0), &cert.key_pem)?;
        }
        DIR.set(Some(dir.path.clone()))
            .map_err(|_| BenchError::Failed("the TLS directory was set twice".into()))?;
        Ok(dir)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("bench: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The TLS configuration of node `id`, from this run's certificates.
pub fn config(id: NodeId) -> Result<TlsConfig, BenchError> {
    let dir = dir().ok_or_else(|| {
        BenchError::Failed(format!("internode-tls: no certificates ({ENV} is not set)"))
    })?;
    TlsConfig::from_pem_files(
        dir.join(format!("node-{}.pem", id.0)),
        dir.join(format!("node-{}.key", id.0)),
        dir.join("ca.pem"),
    )
    .map_err(|e| BenchError::Failed(format!("internode-tls: node {}: {e}", id.0)))
}
