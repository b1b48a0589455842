//! What makes creates safe to repeat across crashes: an attempt counter per resource, written
//! to the object's status before the create call (the provider returns it; core writes it), and
//! derived from it a deterministic `ClientToken` where AWS takes one (RunInstances,
//! CreateNatGateway, EKS CreateCluster/CreateNodegroup). A crash-and-retry sends the same
//! token (AWS answers with what the first call made); a deliberate re-create (the resource
//! failed, or went missing after it existed) records a new attempt, hence a new token.
//!
//! Where AWS takes no token (VPC, subnets, internet gateway, route tables, security groups,
//! Elastic IPs) the in-flight marker carries the time it was recorded and the process that
//! recorded it: a process sends the create of a marker only if it recorded it itself; any other
//! (a restarted controller), or the same one after an answer it could not read, waits out the
//! consistency window and describes again before it records a new attempt. Duplicates that
//! still appear (a create AWS made although its answer was lost) are adopted or removed by the
//! network planner ([`crate::network::plan::plan_dedupe`]).
//!
//! Pure: decisions take the time and the process id as arguments.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use jiff::Timestamp;

use crate::api::Creation;

/// What to do about a resource that is not (yet) seen in AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Go {
    /// Record this attempt first (status write), create on a later pass.
    Record(Creation),
    /// Send the create of this attempt now.
    Create(u32),
    /// A create may be in flight and not visible yet: describe again later.
    Wait {
        /// Time left of the consistency window.
        left: Duration,
    },
}

/// The decision for one missing resource.
///
/// - `prev`: its creation record in status;
/// - `me`: this process's id; `sent`: whether this process sent the create of `prev`'s
///   attempt already;
/// - `tokened`: whether the create carries a ClientToken (a resend is then harmless);
/// - `failed`: whether AWS shows this attempt's resource failed (a new attempt is due).
pub fn decide(
    prev: Option<&Creation>,
    now: Timestamp,
    me: &str,
    sent: bool,
    tokened: bool,
    failed: bool,
    window: Duration,
) -> Go {
    let record = |attempt: u32| {
        Go::Record(Creation {
            attempt,
            since: Some(now.to_string()),
            by: Some(me.to_string()),
        })
    };
    let Some(p) = prev else { return record(1) };
    let Some(since) = p.since.as_deref() else {
        // Nothing in flight: the resource existed and is gone (drift), or never was made.
        return record(p.attempt + 1);
    };
    if failed {
        return record(p.attempt + 1);
    }
    if tokened {
        return Go::Create(p.attempt);
    }
    if p.by.as_deref() == Some(me) && !sent {
        return Go::Create(p.attempt);
    }
    let since: Timestamp = since.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    let age = now.duration_since(since);
    let age = Duration::try_from(age).unwrap_or_default();
    if age < window {
        Go::Wait { left: window - age }
    } else {
        record(p.attempt + 1)
    }
}

/// How long ago an in-flight marker was recorded (`None`: nothing in flight).
pub fn in_flight_for(r: &Creation, now: Timestamp) -> Option<Duration> {
    let since: Timestamp = r.since.as_deref()?.parse().ok()?;
    Some(Duration::try_from(now.duration_since(since)).unwrap_or_default())
}

/// The record once the resource is seen: the counter stays, the marker goes. `None` when
/// nothing changes.
pub fn settled(prev: Option<&Creation>) -> Option<Creation> {
    prev.filter(|p| p.since.is_some()).map(|p| Creation {
        attempt: p.attempt,
        since: None,
        by: None,
    })
}

/// The ClientToken of attempt `attempt` of resource `name` of the object with `uid`: at most
/// 64 ASCII characters (EC2's limit), the same for the same inputs in every process.
pub fn token(uid: &str, name: &str, attempt: u32) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let t = format!("{uid}-{:08x}-{attempt}", h as u32);
    t.chars()
        .rev()
        .take(64)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This process's creates: its id, and which recorded attempts it has sent.
#[derive(Debug)]
pub struct Ledger {
    me: String,
    sent: Mutex<HashSet<String>>,
}

impl Default for Ledger {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self {
            me: format!(
                "{:x}-{:x}-{}",
                std::process::id(),
                nanos as u64,
                SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            sent: Mutex::default(),
        }
    }
}

impl Ledger {
    /// This process's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    fn key(uid: &str, name: &str, attempt: u32) -> String {
        format!("{uid}/{name}/{attempt}")
    }

    /// Whether this process sent attempt `attempt` of `name` of `uid`.
    pub fn was_sent(&self, uid: &str, name: &str, attempt: u32) -> bool {
        self.sent
            .lock()
            .expect("ledger lock")
            .contains(&Self::key(uid, name, attempt))
    }

    /// Notes that this process sends it (before the call: a lost answer still counts).
    pub fn send(&self, uid: &str, name: &str, attempt: u32) {
        self.sent
            .lock()
            .expect("ledger lock")
            .insert(Self::key(uid, name, attempt));
    }
}

/// The creation records of one object, as carried from its status to the next.
pub type Records = BTreeMap<String, Creation>;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn rec(attempt: u32, since: Option<i64>, by: &str) -> Creation {
        Creation {
            attempt,
            since: since.map(|s| at(s).to_string()),
            by: Some(by.into()).filter(|_| since.is_some()),
        }
    }

    const W: Duration = Duration::from_secs(30);

    #[test]
    fn first_create_is_recorded_before_it_is_sent() {
        assert_eq!(
            decide(None, at(0), "p1", false, false, false, W),
            Go::Record(rec(1, Some(0), "p1"))
        );
        // Recorded by this process and not sent yet: send it.
        let r = rec(1, Some(0), "p1");
        assert_eq!(
            decide(Some(&r), at(1), "p1", false, false, false, W),
            Go::Create(1)
        );
    }

    #[test]
    fn a_tokened_create_is_resent_with_the_same_attempt_after_a_crash() {
        let r = rec(2, Some(0), "dead");
        assert_eq!(
            decide(Some(&r), at(1), "p2", false, true, false, W),
            Go::Create(2)
        );
        assert_eq!(
            decide(Some(&r), at(1), "p2", true, true, false, W),
            Go::Create(2)
        );
        // ... but a failed resource gets a new attempt (a new token).
        assert_eq!(
            decide(Some(&r), at(1), "p2", true, true, true, W),
            Go::Record(rec(3, Some(1), "p2"))
        );
    }

    #[test]
    fn a_tokenless_create_of_another_process_is_waited_for_then_recorded_again() {
        let r = rec(1, Some(0), "dead");
        assert_eq!(
            decide(Some(&r), at(10), "p2", false, false, false, W),
            Go::Wait {
                left: Duration::from_secs(20)
            }
        );
        // Sent by this process and not visible: also wait.
        let mine = rec(1, Some(0), "p2");
        assert!(matches!(
            decide(Some(&mine), at(5), "p2", true, false, false, W),
            Go::Wait { .. }
        ));
        assert_eq!(
            decide(Some(&r), at(31), "p2", false, false, false, W),
            Go::Record(rec(2, Some(31), "p2"))
        );
    }

    #[test]
    fn a_resource_gone_after_it_existed_gets_a_new_attempt() {
        let done = rec(1, None, "");
        assert_eq!(
            decide(Some(&done), at(0), "p1", false, true, false, W),
            Go::Record(rec(2, Some(0), "p1"))
        );
        assert_eq!(
            settled(Some(&rec(2, Some(0), "p1"))),
            Some(rec(2, None, ""))
        );
        assert_eq!(settled(Some(&done)), None);
        assert_eq!(settled(None), None);
    }

    #[test]
    fn tokens_are_deterministic_distinct_and_fit_ec2() {
        let uid = "7f1c3a52-4a4b-4e43-9d9a-0d6b1b1f2f3a";
        let a = token(uid, "c1-nat-us-east-1a", 1);
        assert_eq!(a, token(uid, "c1-nat-us-east-1a", 1));
        assert_ne!(a, token(uid, "c1-nat-us-east-1a", 2));
        assert_ne!(a, token(uid, "c1-nat-us-east-1b", 1));
        assert_ne!(a, token("other-uid", "c1-nat-us-east-1a", 1));
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
        assert!(token(&"x".repeat(80), "n", 1).len() <= 64);
    }

    #[test]
    fn the_ledger_knows_what_this_process_sent() {
        let l = Ledger::default();
        assert!(!l.was_sent("u", "n", 1));
        l.send("u", "n", 1);
        assert!(l.was_sent("u", "n", 1));
        assert!(!l.was_sent("u", "n", 2));
        assert_ne!(l.me(), Ledger::default().me());
    }
}
