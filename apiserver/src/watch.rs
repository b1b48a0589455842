//! Watch: a stream of `{"type", "object"}` lines for one resource (optionally one namespace,
//! selectors), starting with synthetic ADDED events when no resourceVersion is given, or
//! replaying the history after the given one. As from kube-apiserver, a resourceVersion older
//! than the history is answered 200 with one `ERROR` event carrying a 410 Status (what
//! watchers recover from by re-listing), and one the store has not reached fails at once with
//! "Too large resource version".
//! Bookmarks carry the last resourceVersion seen when `allowWatchBookmarks` is set. A watcher
//! that falls behind the live broadcast catches up from the history; one that falls behind the
//! history too gets an ERROR 410 and must re-watch, as from kube-apiserver.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use crate::{
    api::Api,
    catalog::Resource,
    error::ApiError,
    request::{Query, Target},
    selector::{FieldSelector, LabelSelector},
    store::{Entry, EventType, ObjKey},
    table::{self, IncludeObject},
};

/// How often a bookmark is sent to watchers that allow them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

struct Filter {
    gr: String,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, key: &ObjKey, e: &Entry) -> bool {
        key.gr == self.gr
            && self.ns.as_ref().is_none_or(|n| &key.ns == n)
            && self.labels.matches_meta(&e.meta)
            && self.fields.matches_entry(e)
    }
}

/// One watch line. Objects are spliced in as stored unless a table is asked for.
fn encode(
    api: &Api,
    res: &Resource,
    kind: &str,
    e: &Entry,
    table_state: Option<(&mut bool, IncludeObject)>,
) -> Bytes {
    let mut line = Vec::with_capacity(e.raw.len() + 40);
    line.extend_from_slice(format!("{{\"type\":\"{kind}\",\"object\":").as_bytes());
    match table_state {
        Some((first, include)) => {
            let obj = match api.at_version(res, &e.value()) {
                Ok(o) => o,
                Err(err) => return encode_value("ERROR", &err.status()),
            };
            let mut t = table::table(
                res,
                &[&obj],
                include,
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
            );
            if !*first {
                t.as_object_mut()
                    .expect("table")
                    .remove("columnDefinitions");
            }
            *first = false;
            line.extend_from_slice(&serde_json::to_vec(&t).expect("json"));
        }
        None => match api.raw_at_version(res, e) {
            Ok(raw) => line.extend_from_slice(&raw),
            Err(err) => return encode_value("ERROR", &err.status()),
        },
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn encode_value(kind: &str, v: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": v})).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

/// Starts a watch; the receiver yields the response body chunks.
pub fn start(
    api: Arc<Api>,
    res: Arc<Resource>,
    target: &Target,
    query: &Query,
    as_table: bool,
) -> Result<mpsc::Receiver<Result<Bytes, std::io::Error>>, ApiError> {
    let filter = Filter {
        gr: res.gr(),
        ns: if res.namespaced {
            target.namespace.clone()
        } else {
            None
        },
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse_for(
            query.get("fieldSelector").unwrap_or(""),
            crate::selector::selectable_fields(&res.group, &res.plural),
        )?,
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let include = IncludeObject::parse(query.get("includeObject"));

    let (initial, mut rx, mut last_rv): (Vec<(EventType, Entry)>, _, u64) =
        match query.get("resourceVersion").filter(|rv| *rv != "0") {
            Some(rv) => {
                let since: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                let current = api.store.current_rv();
                if since > current {
                    return Err(ApiError::too_large_resource_version(since, current));
                }
                let (backlog, rx) = match api.store.watch_from(since) {
                    Ok(b) => b,
                    Err(e @ crate::store::StoreError::Gone { .. }) => {
                        let (tx, out) = mpsc::channel(1);
                        let status = ApiError::from(e).status();
                        tx.try_send(Ok(encode_value("ERROR", &status)))
                            .expect("a fresh channel has room");
                        return Ok(out);
                    }
                    Err(e) => return Err(e.into()),
                };
                let last = backlog.last().map_or(since, |e| e.rv);
                let events = backlog
                    .iter()
                    .filter(|e| filter.matches(&e.key, &e.entry))
                    .map(|e| (e.kind, e.entry.clone()))
                    .collect();
                (events, rx, last)
            }
            None => {
                let (rv, items, rx) = api.store.watch_now(&filter.gr, filter.ns.as_deref());
                let events = items
                    .into_iter()
                    .filter(|(k, e)| filter.matches(k, e))
                    .map(|(_, e)| (EventType::Added, e))
                    .collect();
                (events, rx, rv)
            }
        };

    let (tx, out) = mpsc::channel(256);
    let store = api.store.clone();
    tokio::spawn(async move {
        let api = api;
        let mut first_table = true;
        macro_rules! line {
            ($kind:expr, $entry:expr) => {
                encode(
                    &api,
                    &res,
                    $kind,
                    $entry,
                    if as_table {
                        Some((&mut first_table, include))
                    } else {
                        None
                    },
                )
            };
        }
        for (kind, entry) in &initial {
            if tx.send(Ok(line!(kind.as_str(), entry))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = ticker.tick(), if bookmarks => {
                    let b = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(Ok(encode_value("BOOKMARK", &b))).await.is_err() { return; }
                }
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        if e.rv <= last_rv { continue; }
                        last_rv = e.rv;
                        if !filter.matches(&e.key, &e.entry) { continue; }
                        if tx.send(Ok(line!(e.kind.as_str(), &e.entry))).await.is_err() { return; }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Behind the live broadcast: catch up from the history while it still
                        // holds every event since `last_rv`. Only a watcher older than the
                        // history gets 410: a re-list under load costs the client far more
                        // (and kube-runtime reconciles against a stale cache while it runs).
                        let Ok((backlog, live)) = store.watch_from(last_rv) else {
                            let status = ApiError::gone(format!("too old resource version: {last_rv}: the watcher fell behind")).status();
                            let _ = tx.send(Ok(encode_value("ERROR", &status))).await;
                            return;
                        };
                        rx = live;
                        for e in backlog {
                            last_rv = e.rv;
                            if !filter.matches(&e.key, &e.entry) { continue; }
                            if tx.send(Ok(line!(e.kind.as_str(), &e.entry))).await.is_err() { return; }
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(out)
}
