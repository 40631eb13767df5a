//! What the examples share: starting up (logging, the command line parsed by clap)
//! and parsers of flag values.

use clap::Parser;

/// Starts an example: logging from `RUST_LOG` (default `warn`), then its command line
/// into `A`, then `check`, which turns it into the example's options. Like a flag clap
/// refuses, an error of `check` is printed with the usage and exits with status 2;
/// `--help` prints the help and exits with status 0.
pub fn start<A: Parser, T>(check: impl FnOnce(A) -> Result<T, String>) -> T {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    check(A::parse()).unwrap_or_else(|e| {
        A::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit()
    })
}

/// A byte count: digits, optionally followed by `k`, `m` or `g` (powers of 1024).
#[allow(dead_code)] // not every example has such a flag
pub fn bytes(value: &str) -> Result<u64, String> {
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 10),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 20),
        Some(b'g' | b'G') => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let bad = || format!("{value:?} is not a byte count (digits, maybe ending in k, m or g)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// A duration in seconds, maybe fractional, up to a day.
#[allow(dead_code)] // not every example has such a flag
pub fn seconds(value: &str) -> Result<std::time::Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "{value:?} is not a number of seconds from 0 to 86400"
        )),
    }
}
