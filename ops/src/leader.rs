//! Leader election over a `coordination.k8s.io/v1` Lease, so two controller replicas never
//! both reconcile: a candidate takes the Lease when it is free or expired, renews it every
//! `renew` interval, and stops (the process exits) the moment a renewal fails, as
//! controller-runtime does. On shutdown the holder releases the Lease so a standby takes over
//! at once. The decision ([`may_take`]) is pure and table-tested; writes use the Lease's
//! resourceVersion, so two candidates racing for it cannot both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

use slipway_runtime::Error;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This candidate's identity.
    pub identity: String,
    /// How long a Lease lasts without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew: Duration,
}

impl Config {
    /// Defaults: 15 s leases renewed every 5 s, identity `<hostname>-<pid>`.
    pub fn new(namespace: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "slipway".into());
        Self {
            namespace: namespace.into(),
            name: "slipway-controller".into(),
            identity: format!("{host}-{}", std::process::id()),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }
}

/// Whether `me` may take (or keep) a Lease in state `spec` at `now`.
pub fn may_take(spec: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed.0.as_second() + duration < now.as_second()
}

fn spec_for(cfg: &Config, old: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let held = old.is_some_and(|s| s.holder_identity.as_deref() == Some(&cfg.identity));
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: if held {
            old.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            old.and_then(|s| s.lease_transitions).unwrap_or(0) + i32::from(!held && old.is_some()),
        ),
        ..Default::default()
    }
}

/// One attempt to take or renew the Lease; `Ok(true)` when this candidate holds it.
pub async fn try_hold(client: &Client, cfg: &Config) -> Result<bool, Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec_for(cfg, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Some(mut lease) => {
            let old = lease.spec.clone().unwrap_or_default();
            if !may_take(&old, &cfg.identity, now) {
                return Ok(false);
            }
            lease.spec = Some(spec_for(cfg, Some(&old), now));
            // The resourceVersion in `lease` makes this a compare-and-swap.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Waits until this candidate holds the Lease.
pub async fn acquire(client: &Client, cfg: &Config) {
    loop {
        match try_hold(client, cfg).await {
            Ok(true) => {
                tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                return;
            }
            Ok(false) => tracing::debug!("another replica leads; standing by"),
            Err(e) => tracing::warn!(%e, "leader election"),
        }
        tokio::time::sleep(cfg.renew).await;
    }
}

/// Renews the Lease until a renewal fails; returns then (leadership is lost).
pub async fn keep(client: &Client, cfg: &Config) -> String {
    let mut deadline = tokio::time::Instant::now() + cfg.duration;
    loop {
        tokio::time::sleep(cfg.renew).await;
        match try_hold(client, cfg).await {
            Ok(true) => deadline = tokio::time::Instant::now() + cfg.duration,
            Ok(false) => return "another replica took the lease".into(),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return format!("could not renew the lease before it expired: {e}");
            }
            Err(e) => tracing::warn!(%e, "renewing the lease; retrying"),
        }
    }
}

/// Gives the Lease up so a standby replica takes over without waiting for it to expire.
pub async fn release(client: &Client, cfg: &Config) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await
        && lease
            .spec
            .as_ref()
            .is_some_and(|s| s.holder_identity.as_deref() == Some(&cfg.identity))
    {
        if let Some(s) = lease.spec.as_mut() {
            s.holder_identity = None;
            s.renew_time = None;
            s.acquire_time = None;
        }
        let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed: Option<i64>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed.map(|s| MicroTime(Timestamp::from_second(s).unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(may_take(&spec(None, None), "a", now), "free");
        assert!(may_take(&spec(Some("a"), Some(999)), "a", now), "ours");
        assert!(
            !may_take(&spec(Some("b"), Some(990)), "a", now),
            "b renewed 10 s ago"
        );
        assert!(
            may_take(&spec(Some("b"), Some(980)), "a", now),
            "b expired 5 s ago"
        );
        assert!(may_take(&spec(Some(""), Some(999)), "a", now), "released");
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let cfg = Config {
            identity: "a".into(),
            ..Config::new("kube-system")
        };
        let now = Timestamp::from_second(1_000).unwrap();
        let theirs = spec(Some("b"), Some(900));
        let taken = spec_for(&cfg, Some(&theirs), now);
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        let renewed = spec_for(&cfg, Some(&taken), Timestamp::from_second(1_005).unwrap());
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
