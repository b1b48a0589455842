//! Counts the requests kube clients send to the management plane, by client, resource and
//! verb (get, list, watch, create, update, patch, delete, deletecollection), with how many
//! failed. A tower layer on the client, so the count is the same whichever plane answers
//! (the embedded one or any other): what `slipway bench` reports as
//! `requests_by_resource_verb`.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

/// Resource name for discovery and other non-resource paths (`/api`, `/apis/...`,
/// `/version`, `/openapi/...`).
pub const DISCOVERY: &str = "(discovery)";

/// Requests sent and how many of them failed (a status of 400 or more, or no response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Requests sent.
    pub sent: u64,
    /// Of them, answered with an error status or not answered.
    pub failed: u64,
}

/// `(client, resource, verb)`: the client's tag, `group/plural[/subresource]` (the core
/// group is empty, as in `/secrets`, the embedded store's own naming), the verb.
pub type Key = (String, String, &'static str);

/// The counts of every client sharing one tally, at one moment.
pub type Snapshot = BTreeMap<Key, Count>;

/// The counts shared by the layers of several clients.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    counts: Arc<Mutex<Snapshot>>,
}

impl Tally {
    /// A layer counting one client's requests as `client`.
    pub fn layer(&self, client: &'static str) -> CountLayer {
        CountLayer {
            tally: self.clone(),
            client,
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Snapshot {
        self.counts.lock().expect("request tally").clone()
    }

    fn add(&self, key: Key, failed: bool) {
        let mut counts = self.counts.lock().expect("request tally");
        let c = counts.entry(key).or_default();
        c.sent += 1;
        c.failed += u64::from(failed);
    }
}

/// What was counted between two snapshots (`before` taken first).
pub fn since(before: &Snapshot, after: &Snapshot) -> Snapshot {
    after
        .iter()
        .filter_map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            let d = Count {
                sent: a.sent - b.sent,
                failed: a.failed - b.failed,
            };
            (d.sent > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Requests sent by the clients named in `clients`.
pub fn total(s: &Snapshot, clients: &[&str]) -> u64 {
    s.iter()
        .filter(|((c, _, _), _)| clients.contains(&c.as_str()))
        .map(|(_, n)| n.sent)
        .sum()
}

/// `{resource: {verb: n}}` of the requests of `clients` (`failed`: only those that failed).
pub fn by_resource_verb(
    s: &Snapshot,
    clients: &[&str],
    failed: bool,
) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for ((c, resource, verb), n) in s {
        let n = if failed { n.failed } else { n.sent };
        if n > 0 && clients.contains(&c.as_str()) {
            *out.entry(resource.clone())
                .or_default()
                .entry(verb)
                .or_default() += n;
        }
    }
    out
}

/// `{verb: n}` of the requests of `clients`.
pub fn by_verb(s: &Snapshot, clients: &[&str]) -> BTreeMap<&'static str, u64> {
    let mut out: BTreeMap<&'static str, u64> = BTreeMap::new();
    for ((c, _, verb), n) in s {
        if clients.contains(&c.as_str()) {
            *out.entry(verb).or_default() += n.sent;
        }
    }
    out
}

/// `{client: n}`.
pub fn by_client(s: &Snapshot) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for ((c, _, _), n) in s {
        *out.entry(c.clone()).or_default() += n.sent;
    }
    out
}

/// The resource (`group/plural[/subresource]`, or [`DISCOVERY`]) and verb of a request, as
/// the Kubernetes API server's request info names them.
pub fn classify(method: &http::Method, path: &str, query: Option<&str>) -> (String, &'static str) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return (DISCOVERY.into(), "get"),
    };
    if rest.is_empty() {
        return (DISCOVERY.into(), "get");
    }
    // The old watch paths (`/apis/g/v/watch/...`) name the verb in the path.
    let (path_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    // `namespaces/NS/...` scopes what follows, except the namespace's own subresources.
    let rest = match rest {
        ["namespaces", _, next, ..] if !matches!(*next, "status" | "finalize") => &rest[2..],
        _ => rest,
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub, ..] => (*plural, Some(*name), Some(*sub)),
        [] => return (DISCOVERY.into(), "get"),
    };
    let resource = match sub {
        Some(sub) => format!("{group}/{plural}/{sub}"),
        None => format!("{group}/{plural}"),
    };
    let watch_query = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
    });
    let verb = match *method {
        http::Method::GET if path_watch || watch_query => "watch",
        http::Method::GET | http::Method::HEAD if name.is_some() => "get",
        http::Method::GET | http::Method::HEAD => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if name.is_some() => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (resource, verb)
}

/// A tower layer counting the requests of one kube client into a [`Tally`].
#[derive(Clone, Debug)]
pub struct CountLayer {
    tally: Tally,
    client: &'static str,
}

impl<S> tower::Layer<S> for CountLayer {
    type Service = CountService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`CountLayer`].
#[derive(Clone, Debug)]
pub struct CountService<S> {
    inner: S,
    layer: CountLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for CountService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (resource, verb) = classify(req.method(), req.uri().path(), req.uri().query());
        let key = (self.layer.client.to_string(), resource, verb);
        let tally = self.layer.tally.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            let failed = out.as_ref().map_or(true, |r| r.status().as_u16() >= 400);
            tally.add(key, failed);
            out
        })
    }
}

/// A client of the management plane whose requests are counted as `client` in `tally` (and
/// in `rest_client_requests_total`, as every client of [`crate::process::client`]).
pub fn counted_client(
    config: kube::Config,
    tally: &Tally,
    client: &'static str,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&slipway_runtime::metrics::RestLayer)
        .with_layer(&tally.layer(client))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn requests_are_named_as_the_api_server_names_them() {
        let cases: &[(Method, &str, Option<&str>, &str, &str)] = &[
            (Method::GET, "/api", None, DISCOVERY, "get"),
            (Method::GET, "/apis", None, DISCOVERY, "get"),
            (
                Method::GET,
                "/apis/cluster.x-k8s.io/v1beta2",
                None,
                DISCOVERY,
                "get",
            ),
            (Method::GET, "/version", None, DISCOVERY, "get"),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                "/namespaces",
                "list",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default",
                None,
                "/namespaces",
                "get",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/x/finalize",
                None,
                "/namespaces/finalize",
                "update",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/secrets",
                None,
                "/secrets",
                "list",
            ),
            (
                Method::GET,
                "/api/v1/secrets",
                Some("watch=true&resourceVersion=5"),
                "/secrets",
                "watch",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d/secrets/a",
                None,
                "/secrets",
                "get",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/d/secrets",
                None,
                "/secrets",
                "create",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/d/secrets/a",
                None,
                "/secrets",
                "update",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/secrets/a",
                None,
                "/secrets",
                "delete",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/secrets",
                None,
                "/secrets",
                "deletecollection",
            ),
            (
                Method::GET,
                "/apis/cluster.x-k8s.io/v1beta2/machines",
                Some("labelSelector=a%3Db&watch=1&allowWatchBookmarks=true"),
                "cluster.x-k8s.io/machines",
                "watch",
            ),
            (
                Method::GET,
                "/apis/cluster.x-k8s.io/v1beta2/watch/namespaces/d/machines",
                None,
                "cluster.x-k8s.io/machines",
                "watch",
            ),
            (
                Method::PATCH,
                "/apis/cluster.x-k8s.io/v1beta2/namespaces/d/machines/m/status",
                Some("fieldManager=x"),
                "cluster.x-k8s.io/machines/status",
                "patch",
            ),
            (
                Method::GET,
                "/apis/cluster.x-k8s.io/v1beta2/namespaces/d/machines",
                Some("watch=false"),
                "cluster.x-k8s.io/machines",
                "list",
            ),
            (
                Method::POST,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                None,
                "apiextensions.k8s.io/customresourcedefinitions",
                "create",
            ),
        ];
        for (method, path, query, resource, verb) in cases {
            assert_eq!(
                classify(method, path, *query),
                (resource.to_string(), *verb),
                "{method} {path}?{query:?}"
            );
        }
    }

    #[test]
    fn a_tally_counts_per_client_and_a_window_is_the_difference_of_two_snapshots() {
        let t = Tally::default();
        let key = |c: &str, r: &str, v| (c.to_string(), r.to_string(), v);
        t.add(key("controllers", "/secrets", "create"), false);
        let before = t.snapshot();
        t.add(key("controllers", "/secrets", "create"), true);
        t.add(key("controllers", "/secrets", "get"), false);
        t.add(key("observer", "/secrets", "list"), false);
        let d = since(&before, &t.snapshot());
        assert_eq!(total(&d, &["controllers"]), 2);
        assert_eq!(total(&d, &["controllers", "observer"]), 3);
        let all = by_resource_verb(&d, &["controllers"], false);
        assert_eq!(all["/secrets"]["create"], 1);
        assert_eq!(all["/secrets"]["get"], 1);
        assert!(!all["/secrets"].contains_key("list"), "another client's");
        let failed = by_resource_verb(&d, &["controllers"], true);
        assert_eq!(failed["/secrets"].len(), 1);
        assert_eq!(failed["/secrets"]["create"], 1);
        assert_eq!(by_verb(&d, &["controllers", "observer"])["list"], 1);
        assert_eq!(by_client(&d)["observer"], 1);
    }
}
