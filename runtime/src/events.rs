//! core/v1 Events on the management cluster, as upstream controllers record them
//! (`SuccessfulCreate`, `SuccessfulDelete`, scaling, failures with their reasons), with
//! client-go's protections so a hot failure cannot flood the store:
//!
//! - repeats of the same event (object, type, reason, message) update one Event's `count` and
//!   `lastTimestamp` instead of creating new ones, written at most every [`REWRITE_AFTER`];
//! - more than [`SIMILAR_LIMIT`] events of one object with the same reason but different
//!   messages within [`SIMILAR_WINDOW`] fold into one "(combined from similar events)" Event;
//! - each object has a token bucket ([`BURST`] events, one more every [`REFILL`]).
//!
//! The decisions are the pure [`Spam::decide`]; [`Recorder`] does the writes. Recording never
//! fails a reconcile: a failed write is logged at debug level.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};

/// Event type `Normal`.
pub const NORMAL: &str = "Normal";
/// Event type `Warning`.
pub const WARNING: &str = "Warning";

/// Identical events within this long update the existing Event in memory only.
pub const REWRITE_AFTER: Duration = Duration::from_secs(10);
/// Distinct messages of one reason per object before they are combined.
pub const SIMILAR_LIMIT: usize = 10;
/// The window in which similar events are counted.
pub const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Events an object may emit at once.
pub const BURST: u32 = 25;
/// One more event allowed per object after this long.
pub const REFILL: Duration = Duration::from_secs(300);

/// What to write for an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create a new Event with this message (suffix of its name: the sequence number).
    Create {
        /// The message (possibly the combined one).
        message: String,
        /// Index making the Event's name unique.
        seq: u64,
    },
    /// Update Event `seq` to `count`.
    Update {
        /// The Event to update.
        seq: u64,
        /// Its new count.
        count: i32,
    },
    /// Counted in memory only (a repeat within [`REWRITE_AFTER`]).
    Deferred,
    /// Dropped by the object's rate limit.
    Dropped,
}

struct Entry {
    seq: u64,
    count: i32,
    written: Instant,
}

struct Bucket {
    tokens: u32,
    refilled: Instant,
}

/// The spam filter and aggregator's state.
#[derive(Default)]
pub struct Spam {
    events: HashMap<(String, String, String, String), Entry>,
    similar: HashMap<(String, String, String), Vec<(String, Instant)>>,
    buckets: HashMap<String, Bucket>,
    seq: u64,
}

impl Spam {
    /// Decides what to write for event (`object`, `type_`, `reason`, `message`) at `now`.
    pub fn decide(
        &mut self,
        object: &str,
        type_: &str,
        reason: &str,
        message: &str,
        now: Instant,
    ) -> Decision {
        // Similar events: the same reason with ever-new messages becomes one combined event.
        let sim_key = (object.to_string(), type_.to_string(), reason.to_string());
        let seen = self.similar.entry(sim_key).or_default();
        seen.retain(|(_, at)| now.duration_since(*at) < SIMILAR_WINDOW);
        if !seen.iter().any(|(m, _)| m == message) {
            seen.push((message.to_string(), now));
        }
        let message = if seen.len() > SIMILAR_LIMIT {
            format!("(combined from similar events): {message}")
        } else {
            message.to_string()
        };
        let key = (
            object.to_string(),
            type_.to_string(),
            reason.to_string(),
            if message.starts_with("(combined") {
                String::new()
            } else {
                message.clone()
            },
        );
        if let Some(e) = self.events.get_mut(&key) {
            e.count += 1;
            if now.duration_since(e.written) < REWRITE_AFTER {
                return Decision::Deferred;
            }
            e.written = now;
            return Decision::Update {
                seq: e.seq,
                count: e.count,
            };
        }
        let bucket = self.buckets.entry(object.to_string()).or_insert(Bucket {
            tokens: BURST,
            refilled: now,
        });
        let earned = (now.duration_since(bucket.refilled).as_secs() / REFILL.as_secs()) as u32;
        if earned > 0 {
            bucket.tokens = (bucket.tokens + earned).min(BURST);
            bucket.refilled = now;
        }
        if bucket.tokens == 0 {
            return Decision::Dropped;
        }
        bucket.tokens -= 1;
        self.seq += 1;
        self.events.insert(
            key,
            Entry {
                seq: self.seq,
                count: 1,
                written: now,
            },
        );
        Decision::Create {
            message,
            seq: self.seq,
        }
    }
}

/// Records Events through a client of the management cluster.
pub struct Recorder {
    client: Client,
    component: String,
    instance: String,
    spam: Mutex<Spam>,
    /// Prefix of Event names so two processes never collide.
    prefix: String,
}

impl Recorder {
    /// A recorder reporting as `component`.
    pub fn new(client: Client, component: &str) -> Self {
        Self {
            client,
            component: component.to_string(),
            instance: std::env::var("HOSTNAME").unwrap_or_else(|_| component.to_string()),
            spam: Mutex::new(Spam::default()),
            prefix: format!("{:x}", rand::random::<u32>()),
        }
    }

    /// Records a `Normal` event about `obj`.
    pub async fn normal<K>(&self, obj: &K, reason: &str, message: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, NORMAL, reason, message.into()).await;
    }

    /// Records a `Warning` event about `obj`.
    pub async fn warning<K>(&self, obj: &K, reason: &str, message: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, WARNING, reason, message.into()).await;
    }

    async fn publish<K>(&self, obj: &K, type_: &str, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let ns = obj
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = obj.meta().name.clone().unwrap_or_default();
        let object = format!("{}/{ns}/{name}", K::kind(&()));
        let decision = self.spam.lock().expect("event spam filter").decide(
            &object,
            type_,
            reason,
            &message,
            Instant::now(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = jiff::Timestamp::now();
        let result = match decision {
            Decision::Deferred | Decision::Dropped => return,
            Decision::Update { seq, count } => {
                let patch = serde_json::json!({
                    "count": count,
                    "lastTimestamp": Time(now),
                });
                api.patch(
                    &self.event_name(&name, seq),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ())
            }
            Decision::Create { message, seq } => {
                let mut involved = obj.object_ref(&());
                involved.namespace = Some(ns.clone());
                let ev = Event {
                    metadata: ObjectMeta {
                        name: Some(self.event_name(&name, seq)),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    involved_object: ObjectReference {
                        field_path: None,
                        ..involved
                    },
                    reason: Some(reason.to_string()),
                    message: Some(message),
                    type_: Some(type_.to_string()),
                    count: Some(1),
                    first_timestamp: Some(Time(now)),
                    last_timestamp: Some(Time(now)),
                    event_time: Some(MicroTime(now)),
                    action: Some(reason.to_string()),
                    source: Some(EventSource {
                        component: Some(self.component.clone()),
                        host: None,
                    }),
                    reporting_component: Some(self.component.clone()),
                    reporting_instance: Some(self.instance.clone()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &ev).await.map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(object = %obj.name_any(), reason, error = %e, "event not recorded");
        }
    }

    fn event_name(&self, object: &str, seq: u64) -> String {
        format!("{object}.{}{seq:x}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_update_one_event_and_are_written_at_most_every_ten_seconds() {
        let mut s = Spam::default();
        let t0 = Instant::now();
        let first = s.decide("Machine/ns/m", WARNING, "Failed", "boom", t0);
        let Decision::Create { seq, .. } = first else {
            panic!("{first:?}")
        };
        assert_eq!(
            s.decide(
                "Machine/ns/m",
                WARNING,
                "Failed",
                "boom",
                t0 + Duration::from_secs(1)
            ),
            Decision::Deferred
        );
        assert_eq!(
            s.decide(
                "Machine/ns/m",
                WARNING,
                "Failed",
                "boom",
                t0 + Duration::from_secs(11)
            ),
            Decision::Update { seq, count: 3 }
        );
    }

    #[test]
    fn similar_messages_are_combined_and_bursts_are_limited() {
        let mut s = Spam::default();
        let t0 = Instant::now();
        let mut created = 0;
        let mut combined = 0;
        for i in 0..40 {
            match s.decide("Machine/ns/m", WARNING, "Failed", &format!("error {i}"), t0) {
                Decision::Create { message, .. } => {
                    created += 1;
                    if message.starts_with("(combined from similar events)") {
                        combined += 1;
                    }
                }
                Decision::Dropped => panic!("the combined event absorbs the rest"),
                _ => {}
            }
        }
        assert_eq!(
            created,
            SIMILAR_LIMIT + 1,
            "ten distinct, then one combined"
        );
        assert_eq!(combined, 1);
        // Another reason on the same object: the bucket still limits it.
        let mut dropped = 0;
        for i in 0..40 {
            let r = format!("Reason{i}");
            if s.decide("Machine/ns/m", NORMAL, &r, "x", t0) == Decision::Dropped {
                dropped += 1;
            }
        }
        assert_eq!(
            dropped,
            40 - (BURST as usize - created),
            "burst of {BURST} per object"
        );
        // The bucket refills over time.
        assert!(matches!(
            s.decide("Machine/ns/m", NORMAL, "Later", "x", t0 + REFILL),
            Decision::Create { .. }
        ));
    }
}
