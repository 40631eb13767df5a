//! A strict reader of the Prometheus text format (0.0.4, `Metrics::to_prometheus`)
//! and of OpenMetrics text (what `prometheus_client` encodes a registry to), for the
//! tests of the metrics.

use std::collections::{BTreeMap, BTreeSet};

/// Checks the Prometheus text format (0.0.4) of `text` (see [`parse`]) and returns
/// the samples by series (`name{labels}` as written).
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    parse(text, false)
}

/// Checks the OpenMetrics text of `text` (see [`parse`]; it ends with `# EOF`, and a
/// counter family's name has no `_total`, which its samples add) and returns the
/// samples by series.
pub fn parse_openmetrics(text: &str) -> BTreeMap<String, f64> {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no final # EOF in\n{text}"));
    parse(body, true)
}

/// A histogram series as read: its buckets (bound, cumulative count), sum and count.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

/// Checks that every sample line is `name{labels} value` or `name value` with
/// well-formed labels and a number, that every family has exactly one `# HELP` and
/// one `# TYPE` before its samples and its samples are together, that no series
/// repeats, that every `peer` label is a node id and every `link` label a link kind
/// (no made-up values such as "closed" or "all"), and that every histogram series
/// has `_bucket`s with increasing `le` bounds and non-decreasing counts ending with
/// `le="+Inf"` equal to its `_count`, and a `_sum`.
fn parse(text: &str, openmetrics: bool) -> BTreeMap<String, f64> {
    let mut helped = BTreeSet::new();
    let mut typed: BTreeMap<String, &str> = BTreeMap::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    // Per histogram series (its name and labels without `le`).
    let mut histograms: BTreeMap<String, HistogramSeries> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&at);
            assert!(is_metric_name(name) && !help.is_empty(), "{at}");
            assert!(helped.insert(name.to_string()), "second HELP, {at}");
            assert!(!typed.contains_key(name), "HELP after TYPE, {at}");
            if let Some(previous) = current.replace(name.to_string()) {
                finished.insert(previous);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{at}");
            assert_eq!(
                current.as_deref(),
                Some(name),
                "TYPE right after HELP, {at}"
            );
            assert!(
                typed.insert(name.to_string(), kind).is_none(),
                "second TYPE, {at}"
            );
            if kind == "counter" {
                assert_eq!(
                    name.ends_with("_total"),
                    !openmetrics,
                    "a counter ends in _total (OpenMetrics: its samples do), {at}"
                );
            }
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{at}");
        let (series, value) = line.rsplit_once(' ').expect(&at);
        let value: f64 = value.parse().expect(&at);
        assert!(value.is_finite() && value >= 0.0, "{at}");
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect(&at);
                (name, check_labels(labels, &at))
            }
        };
        assert!(is_metric_name(name), "{at}");
        let family = current.as_deref().expect(&at);
        let kind = *typed
            .get(family)
            .unwrap_or_else(|| panic!("TYPE before samples, {at}"));
        let suffix = name
            .strip_prefix(family)
            .unwrap_or_else(|| panic!("a sample of its family, {at}"));
        match (kind, suffix) {
            ("counter", "_total") if openmetrics => {}
            ("counter" | "gauge", "") => {}
            ("histogram", "_bucket" | "_sum" | "_count") => {
                let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v);
                assert_eq!(
                    le.is_some(),
                    suffix == "_bucket",
                    "le on buckets only, {at}"
                );
                let key = format!(
                    "{family}{{{}}}",
                    labels
                        .iter()
                        .filter(|(k, _)| k != "le")
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let entry = histograms.entry(key).or_default();
                match (suffix, le) {
                    ("_bucket", Some(le)) => {
                        let bound = if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().expect(&at)
                        };
                        entry.0.push((bound, value));
                    }
                    ("_sum", _) => assert!(entry.1.replace(value).is_none(), "{at}"),
                    _ => assert!(entry.2.replace(value).is_none(), "{at}"),
                }
            }
            _ => panic!("a sample of its family's type, {at}"),
        }
        assert!(!finished.contains(family), "samples together, {at}");
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "repeated series, {at}"
        );
    }
    assert_eq!(
        helped,
        typed.keys().cloned().collect(),
        "one HELP and one TYPE each"
    );
    for (series, (buckets, sum, count)) in &histograms {
        let count = count.unwrap_or_else(|| panic!("no _count for {series}"));
        assert!(sum.is_some(), "no _sum for {series}");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "increasing bounds, cumulative counts: {series} {buckets:?}"
        );
        assert_eq!(
            buckets.last(),
            Some(&(f64::INFINITY, count)),
            "+Inf last and equal to _count: {series}"
        );
    }
    samples
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `key="value",...` with escaped values and no key twice; a `peer` is a node id
/// and a `link` a link kind. Returns the labels (values unescaped).
fn check_labels(mut labels: &str, at: &str) -> Vec<(String, String)> {
    let mut keys = BTreeSet::new();
    let mut out = Vec::new();
    while !labels.is_empty() {
        let (key, rest) = labels.split_once("=\"").expect(at);
        assert!(
            is_metric_name(key) && !key.contains(':'),
            "label name, {at}"
        );
        assert!(keys.insert(key), "label twice, {at}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect(at) {
                (_, '\\') => {
                    let (_, escaped) = chars.next().expect(at);
                    assert!(['\\', '"', 'n'].contains(&escaped), "escape, {at}");
                    value.push(if escaped == 'n' { '\n' } else { escaped });
                }
                (i, '"') => break i,
                (_, '\n') => panic!("raw newline, {at}"),
                (_, c) => value.push(c),
            }
        };
        match key {
            "peer" | "node" => assert!(value.parse::<u64>().is_ok(), "a node id, {at}"),
            "link" => assert!(
                ["urgent", "small", "large"].contains(&value.as_str()),
                "a link kind, {at}"
            ),
            _ => assert!(!value.is_empty(), "an empty label value, {at}"),
        }
        out.push((key.to_string(), value));
        labels = &rest[end + 1..];
        if let Some(rest) = labels.strip_prefix(',') {
            labels = rest;
            assert!(!labels.is_empty(), "trailing comma, {at}");
        } else {
            assert!(labels.is_empty(), "comma between labels, {at}");
        }
    }
    out
}

/// The cumulative buckets of the histogram series `series` (`name{labels}`, without
/// `le`) in `samples`, as (bound, count), `+Inf` last (wherever `le` stands among the
/// labels).
pub fn buckets(samples: &BTreeMap<String, f64>, series: &str) -> Vec<(f64, f64)> {
    let (name, labels) = series.split_once('{').expect("name{labels}");
    let wanted = check_labels(labels.strip_suffix('}').expect("name{labels}"), series);
    let bucket = format!("{name}_bucket{{");
    let mut out: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(s, v)| {
            let labels = s.strip_prefix(&bucket)?.strip_suffix('}')?;
            let mut labels = check_labels(labels, s);
            let at = labels.iter().position(|(k, _)| k == "le")?;
            let (_, le) = labels.remove(at);
            if labels != wanted {
                return None;
            }
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, *v))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}
