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

const USAGE: &str = "usage: gen_certs DIR [--cluster NAME (internode)] ID... [--other-ca ID...]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_certs: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    let dir = PathBuf::from(args.next().ok_or(USAGE)?);
    let mut cluster = "internode".to_owned();
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    let mut other_ca = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cluster" => cluster = args.next().ok_or(USAGE)?,
            "--other-ca" => other_ca = true,
            id => {
                let id: u64 = id
                    .parse()
                    .map_err(|_| format!("bad node id {id}\n{USAGE}"))?;
                if other_ca { &mut others } else { &mut ours }.push(id);
            }
        }
    }
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
