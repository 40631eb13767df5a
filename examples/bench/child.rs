//! The benchmark's other processes: this program started again in a hidden role.
//!
//! The parent talks to a child over its standard input and output, one line per
//! command and one per answer (a control channel apart from the sockets measured).
//! A child's standard error is the parent's, so its complaints are seen. Every wait
//! for an answer has a timeout; a [`ChildProc`] that is dropped kills and reaps its
//! process, and every child asks the kernel to kill it if the parent dies
//! (`PR_SET_DEATHSIG`), so no child outlives a run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::BenchError;

/// A child process of this program in some role, with its control channel.
pub struct ChildProc {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ChildProc {
    /// Starts this program again with `args` (a hidden role and its arguments).
    pub fn spawn(name: impl Into<String>, args: &[String]) -> Result<ChildProc, BenchError> {
        ChildProc::spawn_with_env(name, args, &[])
    }

    /// [`spawn`](Self::spawn) with these environment variables set too.
    pub fn spawn_with_env(
        name: impl Into<String>,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<ChildProc, BenchError> {
        ChildProc::spawn_wrapped(name, &[], args, env)
    }

    /// [`spawn_with_env`](Self::spawn_with_env) through a `wrapper` command (its
    /// program and arguments, e.g. `heaptrack -o FILE`), if not empty: the wrapper
    /// runs this program, and whatever it prints is read as the child's lines.
    pub fn spawn_wrapped(
        name: impl Into<String>,
        wrapper: &[String],
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<ChildProc, BenchError> {
        let name = name.into();
        let exe = std::env::current_exe().map_err(|e| BenchError::io("current_exe", e))?;
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command.envs(env.iter().copied());
        if let Some(dir) = crate::tls::dir() {
            // The certificates of internode-tls.
            command.env(crate::tls::ENV, dir);
        }
        if crate::allocs::enabled() {
            command.env(crate::allocs::ENV, "1");
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {name}"), e))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("{name} stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| BenchError::io("starting a reader thread", e))?;
        Ok(ChildProc {
            name,
            child,
            stdin,
            lines,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) -> Result<(), BenchError> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| BenchError::io(format!("writing to {}", self.name), e))
    }

    /// The next line the child prints, within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<String, BenchError> {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                let status = self.child.wait().map(|s| s.to_string());
                Err(BenchError::Failed(format!(
                    "{} ended ({})",
                    self.name,
                    status.unwrap_or_else(|e| e.to_string())
                )))
            }
            Err(_) => Err(BenchError::Timeout(format!(
                "{} did not answer within {timeout:?}",
                self.name
            ))),
        }
    }

    /// Sends `command` and returns the words of the answer, which must start with
    /// `expect`.
    pub async fn ask(
        &mut self,
        command: &str,
        expect: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, BenchError> {
        self.send(command)?;
        self.expect(expect, timeout).await
    }

    /// The words of the next line, which must start with `expect`.
    pub async fn expect(
        &mut self,
        expect: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, BenchError> {
        let line = self.recv(timeout).await?;
        let mut words = line.split_whitespace().map(str::to_owned);
        if words.next().as_deref() != Some(expect) {
            return Err(BenchError::Failed(format!(
                "{} answered {line:?}, expected {expect:?}",
                self.name
            )));
        }
        Ok(words.collect())
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Low-priority processes that keep every core busy while they live (killed on drop).
pub struct Spinners(Vec<ChildProc>);

impl Spinners {
    /// Starts `n` spinners.
    pub fn start(n: usize) -> Result<Spinners, BenchError> {
        (0..n)
            .map(|i| ChildProc::spawn(format!("spinner {i}"), &["--spin".into()]))
            .collect::<Result<_, _>>()
            .map(Spinners)
    }

    /// Waits until each spinner has lowered its priority and started spinning.
    pub async fn started(&mut self) -> Result<(), BenchError> {
        for spinner in &mut self.0 {
            spinner.expect("spinning", Duration::from_secs(10)).await?;
        }
        Ok(())
    }
}

/// What every child does first: die with its parent, and allow many sockets.
pub fn child_setup() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid only read their integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() == 1 {
            // The parent died before the prctl took effect.
            std::process::exit(1);
        }
    }
    raise_fd_limit();
}

/// Raises the soft limit of open files to the hard one (the idle-memory workload
/// opens three sockets per peer, 256 peers; the many-peers hub six per peer) and
/// returns the soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// The `--spin` role: lowest priority (nice 19), then a busy loop until killed.
pub fn spin() -> ! {
    child_setup();
    // SAFETY: setpriority only reads its integer arguments.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
        eprintln!(
            "spinner: setpriority failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    println!("spinning");
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// Commands from the parent: a thread reads standard input and forwards each line;
/// the channel closes when the parent closes it (or dies).
pub fn commands() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), in KiB.
pub fn rss_kib() -> Result<u64, BenchError> {
    status_kib("VmRSS")
}

/// A field of `/proc/self/status` given in kB (`VmRSS`, `RssAnon`...), in KiB.
pub fn status_kib(field: &str) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::io("reading /proc/self/status", e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BenchError::Failed(format!("no {field} in /proc/self/status")))
}

/// The CPU time this process has used so far, user and system, all its threads
/// (`getrusage(RUSAGE_SELF)`; on Linux the sum of the two follows the scheduler's
/// nanosecond runtime, so a difference over a window is precise to microseconds).
pub fn cpu_time() -> Duration {
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value, and
    // getrusage only writes the struct passed.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
