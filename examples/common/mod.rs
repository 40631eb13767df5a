//! What the examples share: command-line flags of the form `--name value`.

/// The `--flag value` pairs of the command line, in order. `--help` (or `-h`), or a
/// flag without a value, is an error carrying the usage text to print.
pub fn flags(usage: &str) -> Result<Vec<(String, String)>, String> {
    let mut args = std::env::args().skip(1);
    let mut pairs = Vec::new();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

/// The error for a value that does not parse.
pub fn bad_value(flag: &str, value: &str, usage: &str) -> String {
    format!("bad value {value:?} for {flag}\n{usage}")
}

/// Starts an example: logging from `RUST_LOG` (default `warn`), then its options;
/// a bad command line is printed and becomes exit code 2.
pub fn start<T>(parse: impl FnOnce() -> Result<T, String>) -> Result<T, std::process::ExitCode> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    parse().map_err(|e| {
        eprintln!("{e}");
        std::process::ExitCode::from(2)
    })
}
