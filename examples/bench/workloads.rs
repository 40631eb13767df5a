//! The message workloads and how their repetitions are interleaved.
//!
//! Each implementation has one receiving process (`--serve`) for the whole run and
//! one client in this process ([`Contender`]); its connections are opened in the
//! warm-up and kept, so no figure includes a connect. A repetition measures every
//! case with every implementation in turn (internode, internode-lossy, internode-tls
//! if selected, raw, framed, then the next case), so slow drifts of the machine touch all of them alike, and a
//! ratio is taken between the figures of the same repetition.
//!
//! - `oneway`: messages of 64 B, 1 KiB, 64 KiB and 1 MiB sent for a fixed time; the
//!   figure runs from the first send until the receiver reports (over the control
//!   channel) that it has every message sent, all in sequence: messages/s and MB/s.
//! - `rr`: one 64 B request at a time for a fixed time; the p50, p99 and p999 of the
//!   round-trip times of that repetition.
//! - `rr64`: 64 requests of 64 B in flight; requests answered per second.
//! - `urgent` (the internode implementations only): one 64 B request at a time over
//!   the urgent link while the large link to the same peer carries 1 MiB messages as
//!   fast as it can (sent by a task of its own, as another part of an application
//!   would); p50 and p99, how many round trips they are taken over, and the MB/s the
//!   large link carried (all delivered, in sequence).

use std::fmt;
use std::time::{Duration, Instant};

use crate::child::{self, ChildProc};
use crate::impls::{Client, Impl};
use crate::stats::{Key, Latencies, Metric, Results};
use crate::BenchError;

/// Payload sizes of the one-way workload.
pub const ONEWAY_SIZES: [usize; 4] = [64, 1 << 10, 64 << 10, 1 << 20];
/// Payload size of requests and responses.
pub const RR_SIZE: usize = 64;
/// Requests in flight in the `rr64` workload.
pub const OUTSTANDING: usize = 64;
/// Payload size of the messages that fill the large link in the `urgent` workload.
pub const FLOOD_SIZE: usize = 1 << 20;
/// How long a control command may take to be answered.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the receiver may take to have every message once the sender is done.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// How much longer than its planned time a measurement may take in all.
const MEASURE_SLACK: Duration = Duration::from_secs(30);

/// A workload, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    Oneway,
    Rr,
    Rr64,
    Urgent,
    Idle,
    ManyPeers,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Oneway,
        Workload::Rr,
        Workload::Rr64,
        Workload::Urgent,
        Workload::Idle,
        Workload::ManyPeers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Oneway => "oneway",
            Workload::Rr => "rr",
            Workload::Rr64 => "rr64",
            Workload::Urgent => "urgent",
            Workload::Idle => "idle",
            Workload::ManyPeers => "many-peers",
        }
    }

    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Whether it runs a second time with busy cores: the request workloads, whose
    /// figures depend on how fast an idle core wakes up.
    pub fn runs_busy(self) -> bool {
        matches!(self, Workload::Rr | Workload::Rr64 | Workload::Urgent)
    }

    /// Whether it is measured with `imp`: the urgent link is internode's only; the
    /// urgent and idle-memory workloads do not depend on how messages are encoded
    /// (internode-hand skips them); the batch path is one-way only; many-peers is
    /// `internode`'s only.
    pub fn runs_with(self, imp: Impl) -> bool {
        match (self, imp) {
            (Workload::ManyPeers, _) => imp == Impl::Internode,
            (Workload::Oneway, _) => true,
            (_, Impl::InternodeBatch) => false,
            (Workload::Urgent, _) => imp.is_internode() && imp != Impl::InternodeHand,
            (Workload::Idle, _) => imp != Impl::InternodeHand,
            _ => true,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the other cores idle, or are kept busy by low-priority spinners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cores {
    Idle,
    Busy,
}

impl Cores {
    pub fn name(self) -> &'static str {
        match self {
            Cores::Idle => "idle",
            Cores::Busy => "busy",
        }
    }
}

/// One workload at one payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub workload: Workload,
    pub size: usize,
}

impl Case {
    /// The message cases of the selected workloads (`idle` and `many-peers` are
    /// measured apart), the
    /// one-way workload at each of `sizes`.
    pub fn all(selected: &[Workload], sizes: &[usize]) -> Vec<Case> {
        let mut cases = Vec::new();
        for &workload in selected {
            match workload {
                Workload::Oneway => cases.extend(sizes.iter().map(|&size| Case { workload, size })),
                Workload::Rr | Workload::Rr64 | Workload::Urgent => cases.push(Case {
                    workload,
                    size: RR_SIZE,
                }),
                Workload::Idle | Workload::ManyPeers => {}
            }
        }
        cases
    }

    /// Whether it is measured with `imp`.
    pub fn runs_with(self, imp: Impl) -> bool {
        self.workload.runs_with(imp)
    }
}

/// How long figures take, and how many repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Time per figure.
    pub time: Duration,
    /// Time per warm-up figure.
    pub warmup: Duration,
    pub reps: usize,
    /// How long the idle-memory workload waits before reading memory.
    pub settle: Duration,
}

impl Timing {
    pub fn new(quick: bool) -> Timing {
        if quick {
            Timing {
                time: Duration::from_millis(200),
                warmup: Duration::from_millis(50),
                reps: 3,
                settle: Duration::from_millis(300),
            }
        } else {
            Timing {
                time: Duration::from_secs(1),
                warmup: Duration::from_millis(200),
                reps: 5,
                settle: Duration::from_secs(1),
            }
        }
    }
}

/// One implementation: its receiving process and its client here.
pub struct Contender {
    pub imp: Impl,
    /// Declared before the client so that it is killed first: the client's
    /// connections then end without the server reporting them as errors.
    server: ChildProc,
    client: Client,
    next_seq: u64,
}

impl Contender {
    /// Starts the receiving process and the client.
    pub async fn start(imp: Impl) -> Result<Contender, BenchError> {
        let mut server = ChildProc::spawn(
            format!("{imp} server"),
            &["--serve".into(), imp.name().into(), "1".into()],
        )?;
        let ready = server.expect("ready", CONTROL_TIMEOUT).await?;
        let port = ready
            .first()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| BenchError::Failed(format!("{imp} server: no port in {ready:?}")))?;
        let client = Client::start(imp, port).await?;
        Ok(Contender {
            imp,
            server,
            client,
            next_seq: 1,
        })
    }

    /// Measures `case` for about `time`, within a bound; its figures.
    async fn measure(
        &mut self,
        case: Case,
        time: Duration,
    ) -> Result<Vec<(Metric, f64)>, BenchError> {
        let imp = self.imp;
        tokio::time::timeout(time + MEASURE_SLACK, self.measure_unbounded(case, time))
            .await
            .unwrap_or_else(|_| {
                Err(BenchError::Timeout(format!(
                    "{imp} {} {} B took over {:?}",
                    case.workload,
                    case.size,
                    time + MEASURE_SLACK
                )))
            })
    }

    async fn measure_unbounded(
        &mut self,
        case: Case,
        time: Duration,
    ) -> Result<Vec<(Metric, f64)>, BenchError> {
        let (imp, seq, size) = (self.imp, self.next_seq, case.size);
        match case.workload {
            Workload::Oneway => {
                expect(&mut self.server, seq, size).await?;
                let cpu = Cpu::start(&mut self.server).await?;
                let started = Instant::now();
                let sent = self.client.oneway(size, started + time, seq).await?;
                self.next_seq += sent;
                delivered(&mut self.server, imp, sent).await?;
                let secs = started.elapsed().as_secs_f64();
                let mut figures = vec![
                    (Metric::MsgsPerS, sent as f64 / secs),
                    (Metric::MBPerS, (sent * size as u64) as f64 / secs / 1e6),
                ];
                figures.extend(cpu.per_message(&mut self.server, sent).await?);
                Ok(figures)
            }
            Workload::Rr => {
                let rtts = self.client.rr(size, Instant::now() + time, seq).await?;
                self.next_seq += rtts.len() as u64;
                let latencies = Latencies::of(&rtts);
                Ok(vec![
                    (Metric::P50, latencies.percentile_us(0.50)),
                    (Metric::P99, latencies.percentile_us(0.99)),
                    (Metric::P999, latencies.percentile_us(0.999)),
                ])
            }
            Workload::Rr64 => {
                let cpu = Cpu::start(&mut self.server).await?;
                let started = Instant::now();
                let answered = self
                    .client
                    .rr_outstanding(size, OUTSTANDING, started + time, seq)
                    .await?;
                self.next_seq += answered;
                let secs = started.elapsed().as_secs_f64();
                let mut figures = vec![(Metric::ReqPerS, answered as f64 / secs)];
                figures.extend(cpu.per_message(&mut self.server, answered).await?);
                Ok(figures)
            }
            Workload::Urgent => {
                let Client::Internode(client) = &self.client else {
                    return Err(BenchError::Failed(format!("{}: no urgent link", self.imp)));
                };
                expect(&mut self.server, seq, FLOOD_SIZE).await?;
                let started = Instant::now();
                let (rtts, flooded) = client
                    .urgent(size, FLOOD_SIZE, started + time, seq, seq)
                    .await?;
                self.next_seq += flooded.max(rtts.len() as u64);
                delivered(&mut self.server, imp, flooded).await?;
                let secs = started.elapsed().as_secs_f64();
                let latencies = Latencies::of(&rtts);
                Ok(vec![
                    (Metric::P50, latencies.percentile_us(0.50)),
                    (Metric::P99, latencies.percentile_us(0.99)),
                    (
                        Metric::LargeMBPerS,
                        (flooded * FLOOD_SIZE as u64) as f64 / secs / 1e6,
                    ),
                    (Metric::RoundTrips, rtts.len() as f64),
                ])
            }
            Workload::Idle | Workload::ManyPeers => Err(BenchError::Failed(format!(
                "the {} workload is not a message case",
                case.workload
            ))),
        }
    }

    /// Closes the client (the receiving process is killed when dropped).
    pub async fn close(self) {
        if let Client::Internode(client) = &self.client {
            client.node().close(false).await;
        }
    }
}

/// What both processes had used when a window started: CPU time, and heap
/// allocations when counting them (`--count-allocs`).
struct Cpu {
    sender: Usage,
    receiver: Usage,
}

/// CPU time and allocations (0 unless counting) of one process so far.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    allocs: u64,
}

impl Usage {
    fn here() -> Usage {
        Usage {
            cpu: child::cpu_time(),
            allocs: crate::allocs::count_so_far(),
        }
    }

    /// The receiving process's, from its `cpu` answer.
    async fn of(server: &mut ChildProc) -> Result<Usage, BenchError> {
        let answer = server.ask("cpu", "cpu", CONTROL_TIMEOUT).await?;
        let word = |i: usize| answer.get(i).and_then(|w| w.parse().ok());
        match (word(0), word(1)) {
            (Some(us), Some(allocs)) => Ok(Usage {
                cpu: Duration::from_micros(us),
                allocs,
            }),
            _ => Err(BenchError::Failed(format!("bad cpu answer {answer:?}"))),
        }
    }
}

impl Cpu {
    /// Reads both processes' usage (the receiver's first: its answer is not part of
    /// the window).
    async fn start(server: &mut ChildProc) -> Result<Cpu, BenchError> {
        let receiver = Usage::of(server).await?;
        Ok(Cpu {
            sender: Usage::here(),
            receiver,
        })
    }

    /// What each process used since [`start`](Self::start), per message of
    /// `messages`: CPU µs of the sender and of the receiver, and their allocations
    /// when counting them.
    async fn per_message(
        self,
        server: &mut ChildProc,
        messages: u64,
    ) -> Result<Vec<(Metric, f64)>, BenchError> {
        let (sender, receiver) = (Usage::here(), Usage::of(server).await?);
        let n = messages.max(1) as f64;
        let cpu =
            |now: Usage, then: Usage| now.cpu.saturating_sub(then.cpu).as_secs_f64() * 1e6 / n;
        let allocs = |now: Usage, then: Usage| now.allocs.saturating_sub(then.allocs) as f64 / n;
        let mut figures = vec![
            (Metric::SendCpuUs, cpu(sender, self.sender)),
            (Metric::RecvCpuUs, cpu(receiver, self.receiver)),
        ];
        if crate::allocs::enabled() {
            figures.push((Metric::SendAllocs, allocs(sender, self.sender)));
            figures.push((Metric::RecvAllocs, allocs(receiver, self.receiver)));
        }
        Ok(figures)
    }
}

/// Tells the receiver what to expect next: payloads of `size` bytes from `seq` on.
async fn expect(server: &mut ChildProc, seq: u64, size: usize) -> Result<(), BenchError> {
    server
        .ask(&format!("expect {seq} {size}"), "ok", CONTROL_TIMEOUT)
        .await
        .map(drop)
}

/// Waits for the receiver to have `sent` messages, all in sequence.
async fn delivered(server: &mut ChildProc, imp: Impl, sent: u64) -> Result<(), BenchError> {
    let command = format!("wait {sent} {}", DELIVERY_TIMEOUT.as_millis());
    let answer = server
        .ask(&command, "sink", DELIVERY_TIMEOUT + CONTROL_TIMEOUT)
        .await?;
    check_delivery(imp, sent, &answer)
}

/// Checks a `sink COUNT BAD [WHAT]` answer: `expected` messages, none bad.
pub fn check_delivery(imp: Impl, expected: u64, answer: &[String]) -> Result<(), BenchError> {
    let count: Option<u64> = answer.first().and_then(|c| c.parse().ok());
    let bad: Option<u64> = answer.get(1).and_then(|b| b.parse().ok());
    if count == Some(expected) && bad == Some(0) {
        return Ok(());
    }
    Err(BenchError::Lost(format!(
        "{imp}: {expected} messages sent, the receiver has {} ({} bad{}{})",
        count.map_or("?".into(), |c| c.to_string()),
        bad.map_or("?".into(), |b| b.to_string()),
        if answer.len() > 2 { ": " } else { "" },
        answer.get(2..).unwrap_or_default().join(" ")
    )))
}

/// Measures every case with every implementation that runs it: a short warm-up
/// round, then `timing.reps` interleaved repetitions.
pub async fn phase(
    cores: Cores,
    cases: &[Case],
    contenders: &mut [Contender],
    timing: &Timing,
    results: &mut Results,
) -> Result<(), BenchError> {
    for round in 0..=timing.reps {
        let warmup = round == 0;
        for &case in cases {
            for contender in contenders.iter_mut() {
                if !case.runs_with(contender.imp) {
                    continue;
                }
                let time = if warmup { timing.warmup } else { timing.time };
                let figures = contender.measure(case, time).await?;
                if warmup {
                    continue;
                }
                for (metric, value) in figures {
                    let key = Key {
                        cores,
                        workload: case.workload,
                        size: case.size,
                        metric,
                        imp: contender.imp,
                    };
                    results.add(key, value);
                }
            }
        }
    }
    Ok(())
}
