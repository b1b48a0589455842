//! Health of registered workload clusters: a probe loop (`GET /readyz` judged by its status
//! code, `GET /version` for the Kubernetes version) every interval with a timeout, every
//! cluster probed concurrently (each at its own [`offset`] into the interval) so one
//! unreachable cluster never delays another, and a
//! debounced state ([`next`], pure and table-tested): turning unhealthy takes
//! `failure_threshold` consecutive failures, recovering takes one success. A change of state
//! wakes the registry reconciler of that cluster, which writes it.
//!
//! Cost at rest matters (a thousand clusters are probed every 10 s): while a cluster is
//! healthy its kubeconfig client is reused without re-reading the Secret for up to
//! [`KUBECONFIG_MAX_AGE`], and `/version` (which changes only with an upgrade) is asked on
//! the first healthy probe, then every [`Prober::version_every`] probes; any failure re-reads
//! the Secret and the version on the next probe.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::runtime::reflector::ObjectRef;
use slipway_api::Cluster;

/// What one probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `/readyz` answered 200; the version, if `/version` answered.
    Healthy(Option<String>),
    /// It answered something else.
    Unhealthy(String),
    /// Nothing answered (connect error, timeout).
    Unreachable(String),
    /// It refused the credentials (401/403) or the kubeconfig is unusable.
    Unauthorized(String),
}

impl Outcome {
    /// The result's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Healthy(_) => "healthy",
            Self::Unhealthy(_) => "unhealthy",
            Self::Unreachable(_) => "unreachable",
            Self::Unauthorized(_) => "unauthorized",
        }
    }
}

/// How long a healthy cluster's kubeconfig client is reused without reading its Secret.
pub const KUBECONFIG_MAX_AGE: Duration = Duration::from_secs(60);

/// The reported state of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    /// The last reported outcome (`None`: not known yet).
    pub reported: Option<Outcome>,
    /// Consecutive failures since the last success.
    pub failures: u32,
    /// Last version seen.
    pub version: Option<String>,
    /// Probes since `/version` last answered.
    pub since_version: u32,
}

impl State {
    /// Whether the next probe asks `/version` too: when no version is known, after a
    /// failure, and every `every` probes.
    pub fn wants_version(&self, every: u32) -> bool {
        self.version.is_none() || self.failures > 0 || self.since_version + 1 >= every.max(1)
    }

    /// Whether the next probe may reuse the cached kubeconfig client (healthy, no failure).
    pub fn trusts_cached_client(&self) -> bool {
        self.failures == 0 && matches!(self.reported, Some(Outcome::Healthy(_)))
    }
}

/// Debounce thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Consecutive failures before a healthy cluster is reported failing.
    pub failure: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { failure: 3 }
    }
}

/// The state after one more probe. Unauthorized is reported at once (retrying the same
/// credentials does not help); other failures after `failure` in a row; one success recovers.
pub fn next(prev: &State, probe: Outcome, t: Thresholds) -> State {
    match probe {
        Outcome::Healthy(v) => State {
            reported: Some(Outcome::Healthy(v.clone().or_else(|| prev.version.clone()))),
            failures: 0,
            since_version: if v.is_some() {
                0
            } else {
                prev.since_version + 1
            },
            version: v.or_else(|| prev.version.clone()),
        },
        failure => {
            let failures = prev.failures + 1;
            let report = matches!(failure, Outcome::Unauthorized(_))
                || failures >= t.failure
                || !matches!(prev.reported, Some(Outcome::Healthy(_)));
            State {
                reported: if report {
                    Some(failure)
                } else {
                    prev.reported.clone()
                },
                failures,
                version: prev.version.clone(),
                since_version: prev.since_version + 1,
            }
        }
    }
}

/// Whether two reports differ in a way worth a status write (messages of the same kind of
/// failure may change every probe; they are not).
pub fn same_kind(a: &Option<Outcome>, b: &Option<Outcome>) -> bool {
    use std::mem::discriminant;
    match (a, b) {
        (Some(Outcome::Healthy(x)), Some(Outcome::Healthy(y))) => x == y,
        (Some(x), Some(y)) => discriminant(x) == discriminant(y),
        (None, None) => true,
        _ => false,
    }
}

/// The probe loop's shared table.
pub struct Prober {
    states: Mutex<HashMap<(String, String), State>>,
    /// Probe period.
    pub interval: Duration,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// `/version` is asked every this many probes of a healthy cluster.
    pub version_every: u32,
}

impl Prober {
    /// A prober with the given period and timeout.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            states: Mutex::new(HashMap::new()),
            interval,
            timeout,
            thresholds: Thresholds::default(),
            version_every: 6,
        }
    }

    /// Starts probing a cluster (no-op when already probed).
    pub fn register(&self, ns: &str, name: &str) {
        self.states
            .lock()
            .expect("prober")
            .entry((ns.into(), name.into()))
            .or_default();
    }

    /// Stops probing a cluster.
    pub fn unregister(&self, ns: &str, name: &str) {
        self.states
            .lock()
            .expect("prober")
            .remove(&(ns.to_string(), name.to_string()));
    }

    /// The current state of a cluster.
    pub fn state(&self, ns: &str, name: &str) -> Option<State> {
        self.states
            .lock()
            .expect("prober")
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    fn keys(&self) -> Vec<(String, String)> {
        self.states
            .lock()
            .expect("prober")
            .keys()
            .cloned()
            .collect()
    }

    /// Probes a cluster once now (`/version` too) and records it, unless it has a reported
    /// state already: the registry's first write then carries the cluster's health instead of
    /// "not probed yet" followed by a second write a probe interval later.
    pub async fn probe_first(&self, ctx: &slipway_runtime::Context, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        if self.state(ns, name).is_some_and(|s| s.reported.is_some()) {
            return;
        }
        let outcome = match ctx.remote.client(&ctx.client, ns, name).await {
            Ok(Some(c)) => probe(c, self.timeout, true).await,
            // The periodic probe reports these; this first look only saves a write.
            Ok(None) | Err(_) => return,
        };
        slipway_runtime::metrics::probe(outcome.label());
        self.record(&key, outcome);
    }

    /// Records a probe; returns whether the reported state changed.
    fn record(&self, key: &(String, String), probe: Outcome) -> bool {
        let mut states = self.states.lock().expect("prober");
        let Some(prev) = states.get(key) else {
            return false;
        };
        let new = next(prev, probe, self.thresholds);
        let changed = !same_kind(&prev.reported, &new.reported);
        states.insert(key.clone(), new);
        changed
    }
}

/// One probe of a cluster through its kubeconfig client (`/version` too when `version`).
pub async fn probe(client: kube::Client, timeout: Duration, version: bool) -> Outcome {
    let readyz = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("request");
    let ready = tokio::time::timeout(timeout, client.request_text(readyz)).await;
    match ready {
        Err(_) => Outcome::Unreachable(format!("/readyz did not answer within {timeout:?}")),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => {
            Outcome::Unauthorized(format!("/readyz: {} {}", s.code, s.message))
        }
        Ok(Err(kube::Error::Api(s))) => {
            Outcome::Unhealthy(format!("/readyz: {} {}", s.code, s.message))
        }
        Ok(Err(e)) => Outcome::Unreachable(format!("/readyz: {e}")),
        Ok(Ok(_)) if !version => Outcome::Healthy(None),
        Ok(Ok(_)) => {
            let version = tokio::time::timeout(timeout, client.apiserver_version())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|v| v.git_version);
            Outcome::Healthy(version)
        }
    }
}

/// Where in the interval a cluster is probed: fixed per cluster and spread evenly over the
/// first 90 % of it, so probes of thousands of clusters do not hold their connections (two
/// descriptors each when the simulated server is in this process, and a TLS handshake each
/// since workload clients close idle connections) all at the same instant.
pub fn offset(key: &(String, String), interval: Duration) -> Duration {
    let h = format!("{}/{}", key.0, key.1)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    interval.mul_f64((h % 1000) as f64 / 1000.0 * 0.9)
}

/// Probes every registered cluster each interval, concurrently, and sends the clusters whose
/// reported state changed to `wake`. Runs until dropped.
pub async fn run(
    prober: Arc<Prober>,
    ctx: Arc<slipway_runtime::Context>,
    wake: futures::channel::mpsc::Sender<ObjectRef<Cluster>>,
) {
    let mut tick = tokio::time::interval(prober.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for key in prober.keys() {
            let (prober, ctx, mut wake) = (prober.clone(), ctx.clone(), wake.clone());
            tokio::spawn(async move {
                // A cluster not probed yet is probed now: registration waits for its health.
                let probed = prober
                    .state(&key.0, &key.1)
                    .is_some_and(|s| s.reported.is_some());
                if probed {
                    tokio::time::sleep(offset(&key, prober.interval)).await;
                }
                let state = prober.state(&key.0, &key.1).unwrap_or_default();
                let client = if state.trusts_cached_client() {
                    let age = KUBECONFIG_MAX_AGE;
                    ctx.remote.recent(&ctx.client, &key.0, &key.1, age).await
                } else {
                    ctx.remote.client(&ctx.client, &key.0, &key.1).await
                };
                let version = state.wants_version(prober.version_every);
                let outcome = match client {
                    Ok(Some(c)) => probe(c, prober.timeout, version).await,
                    Ok(None) => Outcome::Unauthorized("the kubeconfig Secret is gone".into()),
                    Err(e) => Outcome::Unauthorized(format!("unusable kubeconfig: {e}")),
                };
                slipway_runtime::metrics::probe(outcome.label());
                if prober.record(&key, outcome) {
                    use futures::SinkExt;
                    let _ = wake.send(ObjectRef::new(&key.1).within(&key.0)).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: &[Outcome]) -> Vec<Option<Outcome>> {
        let mut s = State::default();
        seq.iter()
            .map(|o| {
                s = next(&s, o.clone(), Thresholds::default());
                s.reported.clone()
            })
            .collect()
    }

    #[test]
    fn probes_are_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..1000)
            .map(|i| offset(&("ns".into(), format!("c{i}")), interval))
            .collect();
        assert!(offsets.iter().all(|o| *o < interval.mul_f64(0.9)));
        let first_second = offsets
            .iter()
            .filter(|o| **o < Duration::from_secs(1))
            .count();
        assert!(
            (60..=170).contains(&first_second),
            "about a ninth start in each second: {first_second}"
        );
        assert_eq!(
            offset(&("ns".into(), "c1".into()), interval),
            offsets[1],
            "fixed per cluster"
        );
    }

    #[test]
    fn failures_are_debounced_and_one_success_recovers() {
        let ok = Outcome::Healthy(Some("v1.31.0".into()));
        let down = Outcome::Unreachable("refused".into());
        let r = run(&[
            ok.clone(),
            down.clone(),
            down.clone(),
            down.clone(),
            ok.clone(),
        ]);
        assert_eq!(r[0], Some(ok.clone()));
        assert_eq!(r[1], Some(ok.clone()), "one failure is not reported");
        assert_eq!(r[2], Some(ok.clone()), "two failures are not reported");
        assert_eq!(r[3], Some(down.clone()), "the third is");
        assert_eq!(r[4], Some(ok.clone()), "one success recovers");
        let denied = Outcome::Unauthorized("401".into());
        assert_eq!(
            run(&[ok.clone(), denied.clone()])[1],
            Some(denied),
            "at once"
        );
        assert_eq!(
            run(std::slice::from_ref(&down))[0],
            Some(down.clone()),
            "never healthy: reported at once"
        );
        let unhealthy = Outcome::Unhealthy("500".into());
        assert!(!same_kind(&Some(unhealthy), &Some(down.clone())));
        assert!(same_kind(
            &Some(down),
            &Some(Outcome::Unreachable("timeout".into()))
        ));
    }

    #[test]
    fn the_version_is_asked_first_after_failures_and_every_nth_probe() {
        let t = Thresholds::default();
        let mut s = State::default();
        assert!(s.wants_version(6), "unknown version");
        assert!(!s.trusts_cached_client(), "never probed: read the Secret");
        s = next(&s, Outcome::Healthy(Some("v1.31.0".into())), t);
        assert!(s.trusts_cached_client());
        let mut asked = vec![];
        for _ in 0..12 {
            let want = s.wants_version(6);
            asked.push(want);
            let v = want.then(|| "v1.31.0".to_string());
            s = next(&s, Outcome::Healthy(v), t);
        }
        assert_eq!(
            asked,
            [
                false, false, false, false, false, true, false, false, false, false, false, true
            ]
        );
        assert_eq!(s.reported, Some(Outcome::Healthy(Some("v1.31.0".into()))));
        s = next(&s, Outcome::Unreachable("x".into()), t);
        assert!(s.wants_version(6), "after a failure");
        assert!(
            !s.trusts_cached_client(),
            "after a failure: read the Secret"
        );
        let settled = next(&State::default(), Outcome::Healthy(Some("v1".into())), t);
        assert!(!settled.wants_version(2));
        assert!(
            settled.wants_version(1) && settled.wants_version(0),
            "every probe"
        );
    }

    #[test]
    fn the_version_is_kept_through_failures() {
        let mut s = State::default();
        s = next(
            &s,
            Outcome::Healthy(Some("v1.31.0".into())),
            Thresholds::default(),
        );
        s = next(&s, Outcome::Unreachable("x".into()), Thresholds::default());
        assert_eq!(s.version.as_deref(), Some("v1.31.0"));
    }
}
