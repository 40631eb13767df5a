//! The receiving process (`--serve IMPL INSTANCES`): one or more servers of one
//! implementation, and the control loop through which the parent drives the sink.
//!
//! It prints `ready PORT...` once its servers listen, then answers commands on its
//! standard input, one per line:
//!
//! | command | answer |
//! | --- | --- |
//! | `expect SEQ SIZE` | `ok`: the sink counts from zero and checks payloads of `SIZE` bytes numbered from `SEQ` |
//! | `count` | `ok`: the sink counts from zero and checks nothing else |
//! | `wait COUNT MILLIS` | `sink COUNT BAD [WHAT]` once `COUNT` messages arrived, something was bad, or `MILLIS` passed |
//! | `rss` | `rss KIB`: this process's resident memory |
//! | `cpu` | `cpu MICROS ALLOCS`: the CPU time this process has used so far (user and system, all threads) and its heap allocations (0 unless counting: `--count-allocs`) |
//!
//! It exits when its standard input closes.

use std::rc::Rc;
use std::time::Duration;

use crate::child::{self, rss_kib};
use crate::impls::{self, Impl};
use crate::payload::{Check, Sink};
use crate::BenchError;

/// The `--serve` role.
pub fn serve_role(imp: Impl, instances: usize) -> Result<(), BenchError> {
    child::child_setup();
    actix::System::new().block_on(async move {
        let sink = Rc::new(Sink::default());
        let mut served = Vec::with_capacity(instances);
        for instance in 0..instances {
            served.push(impls::serve(imp, sink.clone(), instance).await?);
        }
        let ports: Vec<String> = served.iter().map(|s| s.port.to_string()).collect();
        println!("ready {}", ports.join(" "));
        let mut commands = child::commands();
        while let Some(line) = commands.recv().await {
            println!("{}", answer(&sink, &line).await?);
        }
        Ok(())
    })
}

async fn answer(sink: &Sink, line: &str) -> Result<String, BenchError> {
    let bad = || BenchError::Failed(format!("server: bad command {line:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["expect", seq, size] => {
            let next = seq.parse().map_err(|_| bad())?;
            let size = size.parse().map_err(|_| bad())?;
            sink.reset(Check::Sequence { next, size });
            "ok".into()
        }
        ["count"] => {
            sink.reset(Check::CountOnly);
            "ok".into()
        }
        ["wait", count, millis] => {
            let count = count.parse().map_err(|_| bad())?;
            let timeout = Duration::from_millis(millis.parse().map_err(|_| bad())?);
            let tally = sink.wait(count, timeout).await;
            format!(
                "sink {} {} {}",
                tally.count,
                tally.bad,
                tally.first_bad.unwrap_or_default()
            )
        }
        ["rss"] => format!("rss {}", rss_kib()?),
        ["cpu"] => format!(
            "cpu {} {}",
            child::cpu_time().as_micros(),
            crate::allocs::count_so_far()
        ),
        _ => return Err(bad()),
    })
}
