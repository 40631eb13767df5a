//! Writes TLS files for a local cluster: a CA and, for each node id given, a
//! certificate naming `node-<id>.<cluster>` (see `internode::node::TlsConfig`) and its
//! key, made with rcgen. For tests and examples only: the keys are written
//! unencrypted, and the CA's key is not kept.
//!
//! ```text
//! cargo run --example gen_certs -- DIR [--cluster NAME] ID... [--other-ca ID...]
//! ```
//!
//! writes `DIR/ca.pem` and `DIR/node-ID.pem`, `DIR/node-ID.key` for every ID; the IDs
//! after `--other-ca` get certificates from a second CA, written to `DIR/other-ca.pem`
//! (an impostor's: a node of the cluster refuses them; an impostor that trusts both
//! CAs starts, and reaches a node's check of its certificate).

#[path = "../tests/support/certs.rs"]
#[allow(dead_code)]
mod certs;

use std::path::PathBuf;
use std::process::ExitCode;

use certs::Ca;
use clap::Parser;

/// Writes a CA and node certificates for a local cluster (tests and examples only).
#[derive(Parser)]
#[command(name = "gen_certs")]
struct Args {
    /// The directory to write to (created if missing)
    dir: PathBuf,
    /// The cluster's name, in the certificates' node-<id>.<cluster> names
    #[arg(long, value_name = "NAME", default_value = "internode")]
    cluster: String,
    /// Node ids to certify by the cluster's CA (ca.pem)
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Node ids to certify by another CA (other-ca.pem): impostors
    #[arg(long, value_name = "ID", num_args = 1..)]
    other_ca: Vec<u64>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_certs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let Args {
        dir,
        cluster,
        ids: ours,
        other_ca: others,
    } = args;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: String, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let ca = Ca::new("internode example cluster CA");
    write("ca.pem".into(), &ca.pem())?;
    let impostors = Ca::new("another CA");
    if !others.is_empty() {
        write("other-ca.pem".into(), &impostors.pem())?;
    }
    for (ca, ids) in [(&ca, ours), (&impostors, others)] {
        for id in ids {
            let cert = ca.node(id, &cluster);
            write(format!("node-{id}.pem"), &cert.cert_pem)?;
            write(format!("node-{id}.key"), &cert.key_pem)?;
        }
    }
    Ok(())
}
