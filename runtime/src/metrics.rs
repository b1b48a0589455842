//! Process metrics in the Prometheus text format: reconciles, errors and durations per kind,
//! reconciles in flight (the work queue's depth as far as it is being worked), and registry
//! probe results. Plain counters behind a mutex: a handful of updates per reconcile.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{LazyLock, Mutex},
    time::Instant,
};

#[derive(Default)]
struct Kind {
    reconciles: u64,
    errors: u64,
    seconds: f64,
    in_flight: i64,
}

#[derive(Default)]
struct Registry {
    kinds: BTreeMap<&'static str, Kind>,
    probes: BTreeMap<&'static str, u64>,
}

static METRICS: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// Runs one reconcile of `kind`, counting it, its duration and its failure.
pub async fn timed<T, E>(
    kind: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    METRICS
        .lock()
        .expect("metrics")
        .kinds
        .entry(kind)
        .or_default()
        .in_flight += 1;
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    if took > std::time::Duration::from_secs(1) {
        tracing::debug!(kind, seconds = took.as_secs_f64(), "slow reconcile");
    }
    let mut m = METRICS.lock().expect("metrics");
    let k = m.kinds.entry(kind).or_default();
    k.in_flight -= 1;
    k.reconciles += 1;
    k.seconds += start.elapsed().as_secs_f64();
    if out.is_err() {
        k.errors += 1;
    }
    out
}

/// Counts one registry probe by its result (`healthy`, `unhealthy`, `unreachable`,
/// `unauthorized`).
pub fn probe(result: &'static str) {
    *METRICS
        .lock()
        .expect("metrics")
        .probes
        .entry(result)
        .or_default() += 1;
}

/// Total reconciles so far, of every kind (used by the benchmark).
pub fn total_reconciles() -> u64 {
    METRICS
        .lock()
        .expect("metrics")
        .kinds
        .values()
        .map(|k| k.reconciles)
        .sum()
}

/// The Prometheus text exposition.
pub fn render() -> String {
    let m = METRICS.lock().expect("metrics");
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in rows {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let per_kind = |f: &dyn Fn(&Kind) -> String| {
        m.kinds
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), f(v)))
            .collect::<Vec<_>>()
    };
    family(
        "slipway_reconcile_total",
        "Reconciles run, by kind.",
        "counter",
        per_kind(&|k| k.reconciles.to_string()),
    );
    family(
        "slipway_reconcile_errors_total",
        "Reconciles that returned an error, by kind.",
        "counter",
        per_kind(&|k| k.errors.to_string()),
    );
    family(
        "slipway_reconcile_duration_seconds_sum",
        "Time spent reconciling, by kind.",
        "counter",
        per_kind(&|k| format!("{:.6}", k.seconds)),
    );
    family(
        "slipway_reconcile_in_flight",
        "Reconciles running now, by kind (the worked part of the queue).",
        "gauge",
        per_kind(&|k| k.in_flight.to_string()),
    );
    family(
        "slipway_registry_probes_total",
        "Health probes of registered clusters, by result.",
        "counter",
        m.probes
            .iter()
            .map(|(r, v)| (format!("{{result=\"{r}\"}}"), v.to_string()))
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconciles_are_counted_with_their_errors() {
        let _ = timed("TestKind", async { Ok::<_, ()>(()) }).await;
        let _ = timed("TestKind", async { Err::<(), _>(()) }).await;
        let text = render();
        assert!(
            text.contains("slipway_reconcile_total{kind=\"TestKind\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("slipway_reconcile_errors_total{kind=\"TestKind\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("slipway_reconcile_in_flight{kind=\"TestKind\"} 0"),
            "{text}"
        );
    }
}
