//! What the many-peers workload reads from the kernel: a process's CPU time, context
//! switches and scheduled timeslices, its anonymous memory, the memory of its TCP
//! sockets, and the network namespace's listen-queue counters.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::child;

/// What a process has used so far: the hub answers `stats` with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU time, user and system, all threads.
    pub cpu: Duration,
    /// Voluntary context switches of all threads (`ru_nvcsw`): each is a thread
    /// going to sleep (in `epoll_wait`, on a futex, in a read) and so, once it runs
    /// again, one wake-up.
    pub voluntary: u64,
    /// Involuntary context switches (`ru_nivcsw`): a running thread preempted, which
    /// depends on what else the machine runs.
    pub involuntary: u64,
    /// Timeslices run (the third field of `/proc/self/task/*/schedstat`, summed over
    /// the live threads): every time a thread was put on a CPU, whether it had been
    /// woken or preempted.
    pub timeslices: u64,
}

impl Usage {
    /// This process's, now.
    pub fn here() -> Usage {
        // SAFETY: rusage is plain integers, for which all zeroes is a valid value, and
        // getrusage only writes the struct passed.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        Usage {
            cpu: child::cpu_time(),
            voluntary: usage.ru_nvcsw as u64,
            involuntary: usage.ru_nivcsw as u64,
            timeslices: timeslices(),
        }
    }

    /// As one line of words: `CPU_US VOLUNTARY INVOLUNTARY TIMESLICES`.
    pub fn words(&self) -> String {
        format!(
            "{} {} {} {}",
            self.cpu.as_micros(),
            self.voluntary,
            self.involuntary,
            self.timeslices
        )
    }

    /// The inverse of [`words`](Self::words).
    pub fn parse(words: &[String]) -> Option<Usage> {
        let n = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        Some(Usage {
            cpu: Duration::from_micros(n(0)?),
            voluntary: n(1)?,
            involuntary: n(2)?,
            timeslices: n(3)?,
        })
    }
}

/// The timeslices run by this process's live threads (0 without schedstat).
fn timeslices() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// The voluntary context switches of each live thread of this process, by
/// `NAME TID` (the name from `comm`).
pub fn thread_wakeups() -> BTreeMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            let status = std::fs::read_to_string(path.join("status")).ok()?;
            let switches = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse()
                .ok()?;
            let tid = task.file_name().to_string_lossy().into_owned();
            Some((format!("{} {tid}", comm.trim()), switches))
        })
        .collect()
}

/// `ListenOverflows` and `ListenDrops` of `/proc/net/netstat` (`TcpExt`): SYNs and
/// connections dropped because a listen queue was full, and all drops at a
/// listening socket, for the whole network namespace since it was made.
pub fn listen_drops() -> Option<(u64, u64)> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut rows = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next()?, rows.next()?);
    let field = |name: &str| {
        let i = names.split_whitespace().position(|n| n == name)?;
        values.split_whitespace().nth(i)?.parse().ok()
    };
    Some((field("ListenOverflows")?, field("ListenDrops")?))
}

/// The TCP sockets of one process and the kernel memory charged to them.
#[derive(Debug, Clone, Copy)]
pub struct SocketMemory {
    /// TCP sockets of the process (listening ones included).
    pub sockets: u64,
    /// Bytes charged to their buffers: received data not yet read, data queued to
    /// send, and memory reserved ahead (`r`, `w` and `f` of `ss -m`'s `skmem`).
    pub buffer_bytes: u64,
}

/// The TCP sockets of process `pid`, from `ss -tamnp` (iproute2); `None` if `ss`
/// is missing or failed.
pub fn socket_memory(pid: u32) -> Option<SocketMemory> {
    let out = std::process::Command::new("ss")
        .args(["-H", "-t", "-a", "-m", "-n", "-p"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let owner = format!("pid={pid},");
    // A socket is a line that starts without blanks; its skmem may follow on a
    // continuation line.
    let mut records: Vec<String> = Vec::new();
    for line in text.lines() {
        match records.last_mut() {
            Some(record) if line.starts_with(char::is_whitespace) => record.push_str(line),
            _ => records.push(line.to_owned()),
        }
    }
    let mut memory = SocketMemory {
        sockets: 0,
        buffer_bytes: 0,
    };
    for record in records.iter().filter(|r| r.contains(&owner)) {
        memory.sockets += 1;
        let skmem = record
            .split("skmem:(")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_default();
        for field in skmem.split(',') {
            let value = |prefix: &str| field.strip_prefix(prefix)?.parse::<u64>().ok();
            // r: rmem_alloc, w: wmem_queued, f: forward alloc; not rb/tb (limits).
            if let Some(v) = value("r").or_else(|| value("w")).or_else(|| value("f")) {
                memory.buffer_bytes += v;
            }
        }
    }
    Some(memory)
}

/// The size of one TCP socket structure in the kernel (the `TCP` cache of
/// `/proc/slabinfo`, readable by root only); `None` if unreadable.
pub fn tcp_socket_size() -> Option<u64> {
    let slabinfo = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = slabinfo.lines().find(|l| l.starts_with("TCP "))?;
    // name active_objs num_objs objsize ...
    line.split_whitespace().nth(3)?.parse().ok()
}
