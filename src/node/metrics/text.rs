//! The Prometheus text exposition format (version 0.0.4) of the metric families.
//!
//! Invariants: one `# HELP` and one `# TYPE` per family, then its samples together;
//! label values escaped (`\\`, `\"`, `\n`); a histogram's samples are its cumulative
//! `_bucket`s in increasing `le` order ending with `le="+Inf"` (equal to `_count`),
//! then `_sum` and `_count`.

use std::fmt::{self, Write};

use super::families::{Family, Sample, Value};

/// Renders `families` in the text format.
pub(crate) fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families {
        // Writing to a `String` cannot fail.
        let _ = render_family(&mut out, family);
    }
    out
}

fn render_family(out: &mut String, family: &Family) -> fmt::Result {
    let name = family.name;
    writeln!(out, "# HELP {name} {}", family.help)?;
    writeln!(out, "# TYPE {name} {}", family.kind.as_str())?;
    for Sample { labels, value } in &family.samples {
        match value {
            Value::Int(n) => line(out, name, "", labels, None, n)?,
            Value::Histogram(h) => {
                for (bound, count) in &h.buckets {
                    line(
                        out,
                        name,
                        "_bucket",
                        labels,
                        Some(&bound.to_string()),
                        count,
                    )?;
                }
                line(out, name, "_bucket", labels, Some("+Inf"), h.count)?;
                line(out, name, "_sum", labels, None, h.sum)?;
                line(out, name, "_count", labels, None, h.count)?;
            }
        }
    }
    Ok(())
}

/// One sample: `name{labels} value`, with an `le` label last if given.
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, String)],
    le: Option<&str>,
    value: impl fmt::Display,
) -> fmt::Result {
    write!(out, "{name}{suffix}")?;
    let all = labels
        .iter()
        .map(|(key, v)| (*key, v.as_str()))
        .chain(le.map(|le| ("le", le)));
    for (i, (key, v)) in all.enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        write!(out, "{key}=\"{}\"", escape(v))?;
    }
    if !labels.is_empty() || le.is_some() {
        out.push('}');
    }
    writeln!(out, " {value}")
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::families::{Histogram, Kind};
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let labels = vec![
            ("node", "1".to_string()),
            ("peer", "a\"b\\c\nd".to_string()),
        ];
        let families = [
            Family {
                name: "x_total",
                help: "Some x.",
                kind: Kind::Counter,
                samples: vec![Sample {
                    labels: labels.clone(),
                    value: Value::Int(3),
                }],
            },
            Family {
                name: "y",
                help: "A y.",
                kind: Kind::Gauge,
                samples: vec![Sample {
                    labels: Vec::new(),
                    value: Value::Int(0),
                }],
            },
            Family {
                name: "z_seconds",
                help: "A z.",
                kind: Kind::Histogram,
                samples: vec![Sample {
                    labels: vec![("node", "1".to_string())],
                    value: Value::Histogram(Histogram {
                        buckets: vec![(0.001, 1), (0.25, 2)],
                        sum: 0.3,
                        count: 3,
                    }),
                }],
            },
        ];
        assert_eq!(
            render(&families),
            "# HELP x_total Some x.\n\
             # TYPE x_total counter\n\
             x_total{node=\"1\",peer=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP y A y.\n\
             # TYPE y gauge\n\
             y 0\n\
             # HELP z_seconds A z.\n\
             # TYPE z_seconds histogram\n\
             z_seconds_bucket{node=\"1\",le=\"0.001\"} 1\n\
             z_seconds_bucket{node=\"1\",le=\"0.25\"} 2\n\
             z_seconds_bucket{node=\"1\",le=\"+Inf\"} 3\n\
             z_seconds_sum{node=\"1\"} 0.3\n\
             z_seconds_count{node=\"1\"} 3\n"
        );
    }
}
