//! Process metrics with controller-runtime's names and shapes (what Cluster API dashboards
//! read), kept with `prometheus-client` and served in the Prometheus text format:
//!
//! - `controller_runtime_reconcile_total{controller,result}` (result `success`, `error`,
//!   `requeue`, `requeue_after`), `controller_runtime_reconcile_errors_total{controller}`,
//!   `controller_runtime_reconcile_time_seconds{controller}` (histogram),
//!   `controller_runtime_active_workers{controller}`;
//! - `workqueue_adds_total{controller,name}`: reconcile requests handed to a worker (kube's
//!   scheduler merges duplicate triggers before that); `workqueue_depth{controller,name}`:
//!   requests being worked now (the scheduler does not expose its pending set);
//!   `workqueue_queue_duration_seconds{controller,name}`: how long a requeued object waited
//!   past its due time;
//! - `rest_client_requests_total{code,method}`: requests of the management-cluster client
//!   ([`RestLayer`]);
//! - `process_*` from `/proc/self` (CPU, memory, file descriptors, start time);
//! - `slipway_registry_probes_total{result}`;
//! - Cluster API state: `capi_cluster_status_phase{namespace,name,phase}`,
//!   `capi_cluster_status_condition{namespace,name,type,status}` and the same for
//!   `capi_machine_*` (1 for the current phase / status, 0 for the others).

use std::{
    collections::HashMap,
    fmt::Write as _,
    future::Future,
    pin::Pin,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    controller: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestLabels {
    code: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    namespace: String,
    name: String,
    #[prometheus(flatten)]
    cond: CondPart,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CondPart {
    r#type: String,
    status: String,
}

/// The label sets one object last set: its phases and its conditions.
type ObjectSeries = (Vec<PhaseLabels>, Vec<ConditionLabels>);

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_buckets() -> Histogram {
    // controller-runtime's buckets: 5 ms to about 60 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabel, Counter>,
    time: HistogramFamily<ControllerLabel>,
    workers: Family<ControllerLabel, Gauge>,
    adds: Family<QueueLabels, Counter>,
    depth: Family<QueueLabels, Gauge>,
    queue_time: HistogramFamily<QueueLabels>,
    rest: Family<RestLabels, Counter>,
    probes: Family<ProbeLabel, Counter>,
    phases: [Family<PhaseLabels, Gauge>; 2],
    conditions: [Family<ConditionLabels, Gauge>; 2],
    /// Per object, the label sets it set last (removed when it changes or goes).
    state: Mutex<HashMap<(usize, String, String), ObjectSeries>>,
    /// When each requeued object is due, to measure how long it waited past that.
    due: Mutex<HashMap<(String, String), Instant>>,
    total: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let reconciles = Family::<ResultLabels, Counter>::default();
    let errors = Family::<ControllerLabel, Counter>::default();
    let time: HistogramFamily<ControllerLabel> = Family::new_with_constructor(reconcile_buckets);
    let workers = Family::<ControllerLabel, Gauge>::default();
    let adds = Family::<QueueLabels, Counter>::default();
    let depth = Family::<QueueLabels, Gauge>::default();
    let queue_time: HistogramFamily<QueueLabels> = Family::new_with_constructor(reconcile_buckets);
    let rest = Family::<RestLabels, Counter>::default();
    let probes = Family::<ProbeLabel, Counter>::default();
    let phases = [Family::default(), Family::default()];
    let conditions = [Family::default(), Family::default()];
    registry.register(
        "controller_runtime_reconcile",
        "Total number of reconciliations per controller",
        reconciles.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_errors",
        "Total number of reconciliation errors per controller",
        errors.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_time_seconds",
        "Length of time per reconciliation per controller",
        time.clone(),
    );
    registry.register(
        "controller_runtime_active_workers",
        "Number of currently used workers per controller",
        workers.clone(),
    );
    registry.register(
        "workqueue_adds",
        "Total number of adds handled by workqueue",
        adds.clone(),
    );
    registry.register(
        "workqueue_depth",
        "Current depth of workqueue (requests being worked)",
        depth.clone(),
    );
    registry.register(
        "workqueue_queue_duration_seconds",
        "How long in seconds a requeued item stays in workqueue past its due time before being requested",
        queue_time.clone(),
    );
    registry.register(
        "rest_client_requests",
        "Number of HTTP requests to the management cluster, partitioned by status code and method",
        rest.clone(),
    );
    registry.register(
        "slipway_registry_probes",
        "Health probes of registered clusters, by result",
        probes.clone(),
    );
    registry.register(
        "capi_cluster_status_phase",
        "The clusters' current phase",
        phases[0].clone(),
    );
    registry.register(
        "capi_cluster_status_condition",
        "The condition of a cluster",
        conditions[0].clone(),
    );
    registry.register(
        "capi_machine_status_phase",
        "The machines' current phase",
        phases[1].clone(),
    );
    registry.register(
        "capi_machine_status_condition",
        "The condition of a machine",
        conditions[1].clone(),
    );
    Metrics {
        registry,
        reconciles,
        errors,
        time,
        workers,
        adds,
        depth,
        queue_time,
        rest,
        probes,
        phases,
        conditions,
        state: Mutex::default(),
        due: Mutex::default(),
        total: AtomicU64::new(0),
    }
});

fn controller_name(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

/// Runs one reconcile of controller `kind` on object `key`, counting it by result, its
/// duration and its failure.
pub async fn timed<E>(
    kind: &'static str,
    key: String,
    f: impl Future<Output = Result<Action, E>>,
) -> Result<Action, E> {
    let m = &*METRICS;
    let controller = controller_name(kind);
    let q = QueueLabels {
        controller: controller.clone(),
        name: controller.clone(),
    };
    let c = ControllerLabel {
        controller: controller.clone(),
    };
    m.adds.get_or_create(&q).inc();
    // Every series of a controller exists from its first reconcile on, as controller-runtime
    // initialises them, so rates and absent() work.
    let _ = m.errors.get_or_create(&c);
    for result in ["success", "error", "requeue", "requeue_after"] {
        let _ = m.reconciles.get_or_create(&ResultLabels {
            controller: controller.clone(),
            result: result.into(),
        });
    }
    let due = m
        .due
        .lock()
        .expect("metrics")
        .remove(&(controller.clone(), key.clone()));
    if let Some(due) = due {
        let late = Instant::now().saturating_duration_since(due);
        m.queue_time.get_or_create(&q).observe(late.as_secs_f64());
    }
    m.depth.get_or_create(&q).inc();
    m.workers.get_or_create(&c).inc();
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    m.depth.get_or_create(&q).dec();
    m.workers.get_or_create(&c).dec();
    m.time.get_or_create(&c).observe(took.as_secs_f64());
    m.total.fetch_add(1, Ordering::Relaxed);
    let result = match &out {
        Err(_) => {
            m.errors.get_or_create(&c).inc();
            "error"
        }
        Ok(a) if *a == Action::await_change() => "success",
        Ok(_) => "requeue_after",
    };
    m.reconciles
        .get_or_create(&ResultLabels {
            controller,
            result: result.into(),
        })
        .inc();
    out
}

/// Notes that `key` of `kind` is due again after `delay` (a requeue), so the next reconcile
/// can tell how long it waited past that.
pub fn requeued(kind: &str, key: String, delay: Duration) {
    METRICS
        .due
        .lock()
        .expect("metrics")
        .insert((controller_name(kind), key), Instant::now() + delay);
}

/// Counts one registry probe by its result (`healthy`, `unhealthy`, `unreachable`,
/// `unauthorized`).
pub fn probe(result: &'static str) {
    METRICS
        .probes
        .get_or_create(&ProbeLabel {
            result: result.into(),
        })
        .inc();
}

/// Total reconciles so far, of every controller (used by the benchmark).
pub fn total_reconciles() -> u64 {
    METRICS.total.load(Ordering::Relaxed)
}

/// The kinds with Cluster API state metrics.
#[derive(Clone, Copy, Debug)]
pub enum StateKind {
    /// `capi_cluster_*`.
    Cluster = 0,
    /// `capi_machine_*`.
    Machine = 1,
}

/// The phases reported per kind (1 for the current one, 0 for the others), as upstream's
/// state metrics do.
fn phases(kind: StateKind) -> &'static [&'static str] {
    match kind {
        StateKind::Cluster => &[
            "Pending",
            "Provisioning",
            "Provisioned",
            "Deleting",
            "Failed",
            "Unknown",
        ],
        StateKind::Machine => &[
            "Pending",
            "Provisioning",
            "Provisioned",
            "Running",
            "Deleting",
            "Deleted",
            "Failed",
            "Unknown",
        ],
    }
}

/// Records the phase and conditions of an object (`None`: it is gone).
pub fn state(
    kind: StateKind,
    namespace: &str,
    name: &str,
    now: Option<(Option<&str>, &[Condition])>,
) {
    let m = &*METRICS;
    let i = kind as usize;
    let mut st = m.state.lock().expect("metrics");
    let key = (i, namespace.to_string(), name.to_string());
    if let Some((p, c)) = st.remove(&key) {
        for l in p {
            m.phases[i].remove(&l);
        }
        for l in c {
            m.conditions[i].remove(&l);
        }
    }
    let Some((phase, conds)) = now else { return };
    let mut p = Vec::new();
    for ph in phases(kind) {
        let l = PhaseLabels {
            namespace: namespace.into(),
            name: name.into(),
            phase: (*ph).into(),
        };
        m.phases[i]
            .get_or_create(&l)
            .set(i64::from(phase == Some(*ph)));
        p.push(l);
    }
    let mut c = Vec::new();
    for cond in conds {
        for s in ["True", "False", "Unknown"] {
            let l = ConditionLabels {
                namespace: namespace.into(),
                name: name.into(),
                cond: CondPart {
                    r#type: cond.type_.clone(),
                    status: s.into(),
                },
            };
            m.conditions[i]
                .get_or_create(&l)
                .set(i64::from(cond.status == s));
            c.push(l);
        }
    }
    st.insert(key, (p, c));
}

/// The `process_*` metrics from `/proc/self` (empty where `/proc` is missing).
fn process_metrics(out: &mut String) {
    // USER_HZ and the page size are 100 and 4096 on every Linux this runs on.
    const TICKS: f64 = 100.0;
    const PAGE: u64 = 4096;
    let mut family = |name: &str, help: &str, kind: &str, v: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    };
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime, stime, starttime, vsize, rss are fields 14, 15, 22, 23, 24 (1-based; 3 is f[0]).
    let cpu = (num(11) + num(12)) as f64 / TICKS;
    family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        format!("{cpu}"),
    );
    family(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        "gauge",
        num(20).to_string(),
    );
    family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        (num(21) * PAGE).to_string(),
    );
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        family(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds.count().to_string(),
        );
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<u64>().ok())
        })
    {
        family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            max.to_string(),
        );
    }
    if let Some(btime) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    }) {
        family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            format!("{}", btime as f64 + num(19) as f64 / TICKS),
        );
    }
}

/// OpenMetrics text (what `prometheus-client` writes) as the Prometheus text format 0.0.4 that
/// every scraper and `promtool check metrics` read: counters' HELP/TYPE name the `_total`
/// series, no `# EOF` or `# UNIT`.
fn to_prometheus_text(open: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in open.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(open.len());
    for l in open.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let meta = l
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| l.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{tag}{name}_total {tail}");
                } else {
                    let _ = writeln!(out, "{l}");
                }
            }
            None => {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    out
}

/// The Prometheus text exposition (format 0.0.4).
pub fn render() -> String {
    let mut open = String::new();
    encode(&mut open, &METRICS.registry).expect("writing to a String");
    let mut out = to_prometheus_text(&open);
    process_metrics(&mut out);
    out
}

/// A tower layer counting the requests of a kube client by status code and method
/// (`rest_client_requests_total`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RestLayer;

impl<S> tower::Layer<S> for RestLayer {
    type Service = RestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestService { inner }
    }
}

/// The service of [`RestLayer`].
#[derive(Clone, Debug)]
pub struct RestService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RestService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().as_str().to_string();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            let code = match &out {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            METRICS
                .rest
                .get_or_create(&RestLabels { code, method })
                .inc();
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconciles_are_counted_by_result_with_a_histogram() {
        let _ = timed("TestKind", "ns/a".into(), async {
            Ok::<_, ()>(Action::await_change())
        })
        .await;
        let _ = timed("TestKind", "ns/a".into(), async { Err::<Action, _>(()) }).await;
        let text = render();
        for want in [
            "# TYPE controller_runtime_reconcile_total counter",
            "controller_runtime_reconcile_total{controller=\"testkind\",result=\"success\"} 1",
            "controller_runtime_reconcile_total{controller=\"testkind\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"testkind\"} 1",
            "# TYPE controller_runtime_reconcile_time_seconds histogram",
            "controller_runtime_reconcile_time_seconds_count{controller=\"testkind\"} 2",
            "workqueue_adds_total{controller=\"testkind\",name=\"testkind\"} 2",
            "workqueue_depth{controller=\"testkind\",name=\"testkind\"} 0",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn state_metrics_follow_the_object_and_go_with_it() {
        let c = Condition {
            type_: "Available".into(),
            status: "False".into(),
            reason: "NotAvailable".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        state(
            StateKind::Cluster,
            "ns",
            "s1",
            Some((Some("Provisioned"), &[c])),
        );
        let text = render();
        assert!(
            text.contains(
                "capi_cluster_status_phase{namespace=\"ns\",name=\"s1\",phase=\"Provisioned\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "capi_cluster_status_condition{namespace=\"ns\",name=\"s1\",type=\"Available\",status=\"False\"} 1"
        ), "{text}");
        assert!(text.contains(
            "capi_cluster_status_condition{namespace=\"ns\",name=\"s1\",type=\"Available\",status=\"True\"} 0"
        ), "{text}");
        state(StateKind::Cluster, "ns", "s1", None);
        assert!(!render().contains("name=\"s1\""));
    }
}
