//! A small metric registry: counter, gauge and histogram families with fixed label names,
//! rendered in the Prometheus text exposition format (version 0.0.4).
//!
//! Label values are whatever the caller passes; keeping them bounded (no UIDs) is the
//! caller's job (`super::labels` does it for peer-controlled values).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Label values of one sample, in the order of the family's label names.
type Key = Vec<String>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write `# HELP` and `# TYPE` for a family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Write one sample line: `name{l1="v1",...} value`.
pub fn sample(out: &mut String, name: &str, names: &[&str], values: &[String], value: f64) {
    out.push_str(name);
    if !names.is_empty() {
        out.push('{');
        for (i, (n, v)) in names.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{n}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// A family of monotonically increasing counters (`_total` names).
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Key, f64>>,
}

impl CounterVec {
    /// An empty family.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        CounterVec {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Add `by` to the counter with these label values.
    pub fn add(&self, values: &[&str], by: f64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        *lock(&self.values).entry(key).or_insert(0.0) += by;
    }

    /// Add one.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1.0);
    }

    /// The current value (0 when never counted).
    pub fn get(&self, values: &[&str]) -> f64 {
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        lock(&self.values).get(&key).copied().unwrap_or(0.0)
    }

    /// Append the family to `out`; a family without labels always shows its sample.
    pub fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let values = lock(&self.values);
        if self.labels.is_empty() && values.is_empty() {
            sample(out, self.name, &[], &[], 0.0);
        }
        for (key, v) in values.iter() {
            sample(out, self.name, self.labels, key, *v);
        }
    }
}

/// A family of values that go up and down.
pub struct GaugeVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Key, f64>>,
}

impl GaugeVec {
    /// An empty family.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        GaugeVec {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Add `by` (negative to subtract).
    pub fn add(&self, values: &[&str], by: f64) {
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        *lock(&self.values).entry(key).or_insert(0.0) += by;
    }

    /// The current value (0 when never set).
    pub fn get(&self, values: &[&str]) -> f64 {
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        lock(&self.values).get(&key).copied().unwrap_or(0.0)
    }

    /// Append the family to `out`; a family without labels always shows its sample.
    pub fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let values = lock(&self.values);
        if self.labels.is_empty() && values.is_empty() {
            sample(out, self.name, &[], &[], 0.0);
        }
        for (key, v) in values.iter() {
            sample(out, self.name, self.labels, key, *v);
        }
    }
}

/// Bucket counts, sum and count of one labelled histogram.
#[derive(Clone, Default)]
struct HistogramState {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A family of histograms sharing bucket bounds (`_seconds` names).
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<BTreeMap<Key, HistogramState>>,
}

impl HistogramVec {
    /// An empty family with these upper bounds (ascending; `+Inf` is implied).
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        HistogramVec {
            name,
            help,
            labels,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Record one observation.
    pub fn observe(&self, values: &[&str], v: f64) {
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        let mut map = lock(&self.values);
        let state = map.entry(key).or_insert_with(|| HistogramState {
            buckets: vec![0; self.bounds.len()],
            ..Default::default()
        });
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            state.buckets[i] += 1;
        }
        state.sum += v;
        state.count += 1;
    }

    /// Observations so far with these label values.
    pub fn count(&self, values: &[&str]) -> u64 {
        let key: Key = values.iter().map(|v| v.to_string()).collect();
        lock(&self.values).get(&key).map_or(0, |s| s.count)
    }

    /// Append the family to `out`.
    pub fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let bucket = format!("{}_bucket", self.name);
        let mut names: Vec<&str> = self.labels.to_vec();
        names.push("le");
        for (key, state) in lock(&self.values).iter() {
            let mut cumulative = 0;
            let mut values = key.clone();
            values.push(String::new());
            for (bound, n) in self.bounds.iter().zip(&state.buckets) {
                cumulative += n;
                *values.last_mut().expect("le") = format_value(*bound);
                sample(out, &bucket, &names, &values, cumulative as f64);
            }
            *values.last_mut().expect("le") = "+Inf".into();
            sample(out, &bucket, &names, &values, state.count as f64);
            sample(
                out,
                &format!("{}_sum", self.name),
                self.labels,
                key,
                state.sum,
            );
            sample(
                out,
                &format!("{}_count", self.name),
                self.labels,
                key,
                state.count as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let c = CounterVec::new("x_total", "Things.", &["kind"]);
        c.inc(&["a\"b"]);
        c.add(&["a\"b"], 2.0);
        let h = HistogramVec::new("t_seconds", "Time.", &["stage"], &[0.1, 1.0]);
        h.observe(&["decode"], 0.05);
        h.observe(&["decode"], 0.5);
        h.observe(&["decode"], 5.0);
        let mut out = String::new();
        c.encode(&mut out);
        h.encode(&mut out);
        assert!(out.contains("x_total{kind=\"a\\\"b\"} 3\n"), "{out}");
        assert!(
            out.contains("t_seconds_bucket{stage=\"decode\",le=\"0.1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{stage=\"decode\",le=\"1\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{stage=\"decode\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_count{stage=\"decode\"} 3\n"),
            "{out}"
        );
        assert_eq!(h.count(&["decode"]), 3);
    }
}
