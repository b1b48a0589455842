//! Which of the instances carrying an AWSMachine's tags is its own, and which are extras to
//! terminate. RunInstances' ClientToken makes a resend answer with the instance already
//! launched, but a token is no guarantee everywhere (an emulator ignoring it, a token that
//! expired, a new attempt while the first launch was still invisible): every instance tagged
//! owned by the cluster with the machine's `Name` is looked at, one is kept (never another than
//! the one `spec.providerID` names) and the others are terminated, with a warning naming them.

use aws_sdk_ec2::types::Filter;

use crate::{
    ProviderError,
    api::AWSMachine,
    clients::Clients,
    error,
    machine::{Found, found, instance_id_of},
    network::{model::owner_tag, observe::is_owned},
};

/// An instance carrying the machine's tags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidate {
    /// What the machine needs of it.
    pub found: Found,
    /// The ClientToken it was launched with.
    pub token: Option<String>,
    /// Launch time, seconds since the epoch.
    pub launched: i64,
}

/// The machine's instance and the extras.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The machine's instance, if any.
    pub keep: Option<Found>,
    /// Ids of live instances carrying the machine's tags that are not its own.
    pub extras: Vec<String>,
}

fn live(c: &Candidate) -> bool {
    !matches!(c.found.state.as_str(), "terminated" | "shutting-down")
}

/// The decision (pure). `recorded`: the instance id of `spec.providerID` (in use: kept whatever
/// its state, never an extra; when it is not among the candidates none is adopted in its
/// place). Else the live instance launched with `token` (the current attempt's ClientToken) is
/// kept, else the first launched (then the lowest id): the same choice on every pass.
pub fn decide(recorded: Option<&str>, token: Option<&str>, candidates: &[Candidate]) -> Decision {
    let keep = match recorded {
        Some(id) => candidates.iter().find(|c| c.found.id == id),
        None => candidates.iter().filter(|c| live(c)).min_by_key(|c| {
            (
                token.is_none() || c.token.as_deref() != token,
                c.launched,
                c.found.id.clone(),
            )
        }),
    };
    let keep_id = keep.map(|k| k.found.id.clone());
    let mut extras: Vec<String> = candidates
        .iter()
        .filter(|c| live(c) && Some(&c.found.id) != keep_id.as_ref())
        .filter(|c| Some(c.found.id.as_str()) != recorded)
        .map(|c| c.found.id.clone())
        .collect();
    extras.sort();
    extras.dedup();
    Decision {
        keep: keep.map(|k| k.found.clone()),
        extras,
    }
}

fn candidate(i: &aws_sdk_ec2::types::Instance) -> Candidate {
    Candidate {
        found: found(i),
        token: i.client_token().filter(|t| !t.is_empty()).map(String::from),
        launched: i.launch_time().map(|t| t.secs()).unwrap_or_default(),
    }
}

/// Every instance tagged owned by `cluster` with the machine's `Name`, and the one of
/// `spec.providerID` (which must carry the owner tag: else a terminal error, it is neither
/// adopted nor terminated). Anything returned without the owner tag is skipped and logged.
pub async fn observe(
    c: &Clients,
    cluster: &str,
    m: &AWSMachine,
) -> Result<Vec<Candidate>, ProviderError> {
    let name = m.metadata.name.clone().unwrap_or_default();
    let owner = owner_tag(cluster);
    let out = error::retrying("DescribeInstances", || {
        c.ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{owner}"))
                    .values("owned")
                    .build(),
            )
            .filters(Filter::builder().name("tag:Name").values(&name).build())
            .send()
    })
    .await?;
    let mut all = Vec::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        // Checked on the object as returned: a tag filter ignored must never make slipway
        // adopt or terminate another's instance.
        let named = i
            .tags()
            .iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some(name.as_str()));
        if !is_owned(i.tags(), &owner) || !named {
            tracing::warn!(
                instance = i.instance_id().unwrap_or_default(),
                owner,
                "skipped: returned for the machine but not tagged owned by its cluster with its name"
            );
            continue;
        }
        all.push(candidate(i));
    }
    let Some(id) = m.spec.provider_id.as_deref().and_then(instance_id_of) else {
        return Ok(all);
    };
    if all.iter().any(|c| c.found.id == id) {
        return Ok(all);
    }
    let out = match c.ec2.describe_instances().instance_ids(id).send().await {
        Ok(o) => o,
        Err(e) if error::is_not_found(&e) => return Ok(all),
        Err(e) => return Err(error::map("DescribeInstances", e)),
    };
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        if !is_owned(i.tags(), &owner) {
            return Err(ProviderError::terminal(format!(
                "instance {} of spec.providerID is not tagged {owner}=owned; slipway neither \
                 adopts nor terminates it",
                i.instance_id().unwrap_or_default()
            )));
        }
        all.push(candidate(i));
    }
    Ok(all)
}

/// Terminates the extras, with a warning naming them.
pub async fn terminate_extras(
    c: &Clients,
    machine: &str,
    kept: Option<&str>,
    extras: &[String],
) -> Result<(), ProviderError> {
    if extras.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        machine,
        kept,
        removing = ?extras,
        "terminating duplicate instances of one machine"
    );
    error::retrying("TerminateInstances", || {
        c.ec2
            .terminate_instances()
            .set_instance_ids(Some(extras.to_vec()))
            .send()
    })
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, state: &str, token: Option<&str>, launched: i64) -> Candidate {
        Candidate {
            found: Found {
                id: id.into(),
                state: state.into(),
                ..Default::default()
            },
            token: token.map(String::from),
            launched,
        }
    }

    fn d(keep: Option<&str>, extras: &[&str]) -> (Option<String>, Vec<String>) {
        (
            keep.map(String::from),
            extras.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn one_instance_is_kept_and_the_extras_terminated_never_the_recorded_one() {
        let t = Some("tok-1");
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Option<&str>,
            Option<&str>,
            Vec<Candidate>,
            (Option<String>, Vec<String>),
        )> = vec![
            ("nothing", None, t, vec![], d(None, &[])),
            (
                "one",
                None,
                t,
                vec![c("i-1", "running", t, 5)],
                d(Some("i-1"), &[]),
            ),
            (
                "the recorded one stays, even launched later and with another token",
                Some("i-2"),
                t,
                vec![
                    c("i-1", "running", t, 1),
                    c("i-2", "running", Some("old"), 9),
                ],
                d(Some("i-2"), &["i-1"]),
            ),
            (
                "the recorded one stays when terminated (reported by the caller); others go",
                Some("i-2"),
                t,
                vec![c("i-1", "pending", t, 1), c("i-2", "terminated", None, 0)],
                d(Some("i-2"), &["i-1"]),
            ),
            (
                "recorded but not seen: nothing adopted in its place",
                Some("i-9"),
                t,
                vec![c("i-1", "running", t, 1)],
                d(None, &["i-1"]),
            ),
            (
                "no record: the one with the current token wins over an earlier one",
                None,
                t,
                vec![
                    c("i-1", "running", Some("other"), 1),
                    c("i-2", "pending", t, 5),
                ],
                d(Some("i-2"), &["i-1"]),
            ),
            (
                "no record, no token match: the first launched, then the lowest id",
                None,
                t,
                vec![
                    c("i-3", "running", None, 2),
                    c("i-2", "running", None, 1),
                    c("i-1", "running", None, 1),
                ],
                d(Some("i-1"), &["i-2", "i-3"]),
            ),
            (
                "terminated or shutting-down ones are neither kept nor terminated again",
                None,
                None,
                vec![
                    c("i-1", "shutting-down", None, 1),
                    c("i-2", "terminated", None, 1),
                    c("i-3", "running", None, 7),
                ],
                d(Some("i-3"), &[]),
            ),
        ];
        for (what, recorded, token, candidates, want) in cases {
            let got = decide(recorded, token, &candidates);
            assert_eq!((got.keep.map(|k| k.id), got.extras), want, "{what}");
        }
    }
}
