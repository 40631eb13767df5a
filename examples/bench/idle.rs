//! The `idle` workload: resident memory per idle connected peer.
//!
//! For each implementation, one receiving process hosts 256 servers (for internode,
//! 256 nodes), all started before anything is measured. A fresh connecting process
//! (`--idle-client`, so that nothing of the message workloads is in its memory)
//! connects to 1, then 16, 64 and 256 of them: to each new peer it sends one message
//! over each of three links (internode: urgent 64 B, small 64 B and large 65 KiB, so
//! that the three links of the peer connect; raw and framed: one connection per link,
//! the same three messages), the receiver confirms it has them all, the process waits
//! a little, and reads its own `VmRSS`. Figures at each step:
//!
//! - `KiB/peer`: the connecting process's growth since it had no peer, per peer;
//! - `KiB/peer trim`: the same after `malloc_trim(0)` (memory freed but kept by the
//!   allocator no longer counts; later steps start from the trimmed heap);
//! - `KiB/added`: its growth since the previous step, per peer added;
//! - `recv KiB/peer`: the receiving process's growth per peer (its inbound
//!   connections: its servers were already running at the start).
//!
//! One run per implementation: memory does not need repetitions to be stable.

use std::time::Duration;

use internode::LinkKind;

use crate::child::{self, rss_kib, ChildProc};
use crate::impls::{IdleClient, Impl};
use crate::stats::{Key, Metric, Results};
use crate::workloads::{check_delivery, Cores, Workload, CONTROL_TIMEOUT};
use crate::BenchError;

/// Peers connected at each step.
pub const PEERS: [usize; 4] = [1, 16, 64, 256];
/// The messages sent to each peer: urgent, small, large.
const SIZES: [usize; 3] = [64, 64, LinkKind::LARGE_THRESHOLD + 1024];
/// How long connecting to a step's new peers may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Measures the idle memory of `imp` at each step of [`PEERS`].
pub async fn measure(imp: Impl, settle: Duration, results: &mut Results) -> Result<(), BenchError> {
    let most = PEERS[PEERS.len() - 1];
    let mut server = ChildProc::spawn(
        format!("{imp} idle server"),
        &["--serve".into(), imp.name().into(), most.to_string()],
    )?;
    let ports = server.expect("ready", CONNECT_TIMEOUT).await?;
    if ports.len() != most {
        return Err(BenchError::Failed(format!(
            "{imp} idle server: {} ports, expected {most}",
            ports.len()
        )));
    }
    server.ask("count", "ok", CONTROL_TIMEOUT).await?;
    let mut client = ChildProc::spawn(
        format!("{imp} idle client"),
        &["--idle-client".into(), imp.name().into()],
    )?;
    client.expect("ready", CONTROL_TIMEOUT).await?;
    let settle_ms = settle.as_millis().to_string();
    let rss = |answer: Vec<String>| -> Result<Vec<f64>, BenchError> {
        answer
            .iter()
            .map(|w| w.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| BenchError::Failed(format!("{imp}: bad rss answer {answer:?}")))
    };
    let base = rss(client
        .ask(&format!("rss {settle_ms}"), "rss", settle + CONTROL_TIMEOUT)
        .await?)?;
    let server_base = rss(server.ask("rss", "rss", CONTROL_TIMEOUT).await?)?;
    let (mut connected, mut previous) = (0, base[0]);
    for peers in PEERS {
        let new: Vec<String> = (connected..peers)
            .map(|i| format!("{i}:{}", ports[i]))
            .collect();
        client
            .ask(
                &format!("peers {}", new.join(" ")),
                "connected",
                CONNECT_TIMEOUT,
            )
            .await?;
        let expected = (SIZES.len() * peers) as u64;
        let wait = format!("wait {expected} {}", CONTROL_TIMEOUT.as_millis());
        let delivery = server.ask(&wait, "sink", 2 * CONTROL_TIMEOUT).await?;
        check_delivery(imp, expected, &delivery)?;
        let now = rss(client
            .ask(&format!("rss {settle_ms}"), "rss", settle + CONTROL_TIMEOUT)
            .await?)?;
        let server_now = rss(server.ask("rss", "rss", CONTROL_TIMEOUT).await?)?;
        let n = peers as f64;
        let key = |metric| Key {
            cores: Cores::Idle,
            workload: Workload::Idle,
            size: peers,
            metric,
            imp,
        };
        results.add(key(Metric::KibPerPeer), (now[0] - base[0]) / n);
        results.add(key(Metric::KibPerPeerTrimmed), (now[1] - base[1]) / n);
        results.add(
            key(Metric::KibPerAddedPeer),
            (now[0] - previous) / (peers - connected) as f64,
        );
        results.add(
            key(Metric::RecvKibPerPeer),
            (server_now[0] - server_base[0]) / n,
        );
        (connected, previous) = (peers, now[0]);
    }
    Ok(())
}

/// The `--idle-client` role: the connecting process. Prints `ready`, then answers
/// `peers INSTANCE:PORT...` (connect and send, then `connected`) and `rss MILLIS`
/// (wait, then `rss KIB KIB_AFTER_MALLOC_TRIM`).
pub fn client_role(imp: Impl) -> Result<(), BenchError> {
    child::child_setup();
    actix::System::new().block_on(async move {
        let mut idle = IdleClient::start(imp).await?;
        println!("ready");
        let mut commands = child::commands();
        while let Some(line) = commands.recv().await {
            let bad = || BenchError::Failed(format!("idle client: bad command {line:?}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["peers", peers @ ..] => {
                    for peer in peers {
                        let (instance, port) = peer.split_once(':').ok_or_else(bad)?;
                        let instance = instance.parse().map_err(|_| bad())?;
                        let port = port.parse().map_err(|_| bad())?;
                        idle.add(instance, port, SIZES).await?;
                    }
                    println!("connected");
                }
                ["rss", millis] => {
                    let millis = millis.parse().map_err(|_| bad())?;
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    let kib = rss_kib()?;
                    // SAFETY: malloc_trim only gives free heap memory back to the system.
                    unsafe { libc::malloc_trim(0) };
                    println!("rss {kib} {}", rss_kib()?);
                }
                _ => return Err(bad()),
            }
        }
        Ok(())
    })
}
