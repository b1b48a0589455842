//! A fault-injecting, request-recording HTTP proxy on 127.0.0.1 in front of `moto_server`,
//! started by the tests themselves on its own thread and runtime (usable from sync and async
//! tests alike).
//!
//! Per AWS action (EC2/ELBv2/STS `Action=` of the query protocol; EKS operations from the REST
//! path) it injects, by a seeded random draw per rule:
//! - throttling (`RequestLimitExceeded` for EC2, `Throttling` for ELBv2/STS, 429 for EKS) and
//!   5xx server errors, answered without reaching moto;
//! - a dropped connection before the request reaches moto, or after moto answered (the
//!   "request done, response lost" case);
//! - latency;
//! - delayed visibility: the object a create made is cut out of Describe answers for a while
//!   (EC2's query protocol: its `<item>` cut out of the XML answer; EKS's REST-JSON protocol:
//!   `DescribeCluster`/`DescribeNodegroup` of it answered 404 `ResourceNotFoundException`, its
//!   name cut out of `ListClusters`/`ListNodegroups`).
//!
//! It also makes up for what moto does not emulate: a create carrying a `ClientToken` (EC2),
//! `clientRequestToken` (EKS), or an elbv2 load balancer or target group name, when sent again,
//! is answered with the first answer, as AWS does; moto would make a second resource. Every
//! request is recorded (action and token) and counted per action.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
};
use hyper_util::rt::TokioIo;

/// A fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Throttling, answered without reaching moto.
    Throttle,
    /// A 500 InternalError, answered without reaching moto.
    ServerError,
    /// The connection dropped before the request reaches moto.
    DropBefore,
    /// The connection dropped after moto answered: the request took effect, the answer is lost.
    DropAfter,
    /// The request waits this long first.
    Latency(Duration),
    /// What the create made is hidden from Describe answers for this long.
    Hide(Duration),
}

impl Fault {
    /// Short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "5xx",
            Fault::DropBefore => "drop-before",
            Fault::DropAfter => "drop-after",
            Fault::Latency(_) => "latency",
            Fault::Hide(_) => "hide",
        }
    }
}

/// Inject `fault` into requests of actions matching `action` (`*` for all, `Create*` for a
/// prefix, else the exact name), each with probability `percent`/100.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Action pattern.
    pub action: String,
    /// The fault.
    pub fault: Fault,
    /// Probability in percent.
    pub percent: u32,
}

impl Rule {
    /// A rule.
    pub fn new(action: &str, fault: Fault, percent: u32) -> Self {
        Self {
            action: action.into(),
            fault,
            percent,
        }
    }

    fn matches(&self, action: &str) -> bool {
        match self.action.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => self.action == action,
        }
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Service (`ec2`, `elasticloadbalancing`, `eks`, `sts`).
    pub service: String,
    /// Action.
    pub action: String,
    /// Its idempotency token (ClientToken / clientRequestToken), if any.
    pub token: Option<String>,
    /// The fault injected, if any.
    pub fault: Option<&'static str>,
    /// Answered from the idempotency cache (moto not asked).
    pub replayed: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    rng: u64,
    records: Vec<Record>,
    /// Idempotency cache: key -> (status, headers, body).
    answers: BTreeMap<String, (u16, hyper::HeaderMap, Bytes)>,
    /// Hidden objects, until when.
    hidden: Vec<(Hidden, Instant)>,
}

/// An object hidden from Describe answers.
#[derive(Clone, Debug, PartialEq)]
enum Hidden {
    /// EC2 (query protocol, XML answers): the describe action, the id's tag, the id.
    Item {
        describe: String,
        tag: String,
        id: String,
    },
    /// EKS (REST-JSON): the object's path (`clusters/<name>`,
    /// `clusters/<name>/node-groups/<name>`).
    Rest { path: String },
}

impl State {
    fn draw(&mut self) -> u32 {
        // xorshift64*: seeded, reproducible.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as u32 % 100
    }
}

/// The chaos tests' seed: `SLIPWAY_CHAOS_SEED` to replay one, else drawn from the clock (the
/// tests print it).
pub fn chaos_seed() -> u64 {
    std::env::var("SLIPWAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                % 1_000_000
        })
}

/// A test's own seeded draws (kill moments), independent of the proxy's.
pub struct Draw(u64);

impl Draw {
    /// Draws from `seed` (0 is replaced: xorshift never leaves it).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next draw in `0..n` (xorshift64).
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The proxy; stops when dropped.
pub struct FaultProxy {
    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:<port>`), drawing faults from `seed`.
    pub fn start(upstream: &str, seed: u64) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://<ip>:<port>");
        let state = Arc::new(Mutex::new(State {
            rng: seed.max(1),
            ..Default::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let st = st.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                handle(st.clone(), upstream, req)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            url,
            state,
            stop: Some(stop),
        }
    }

    /// Replaces the fault rules (none: a plain recording proxy).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules;
    }

    /// Every request so far.
    pub fn records(&self) -> Vec<Record> {
        self.state.lock().unwrap().records.clone()
    }

    /// Requests per action.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.state.lock().unwrap().records.iter() {
            *out.entry(r.action.clone()).or_default() += 1;
        }
        out
    }

    /// Injected faults per kind.
    pub fn faults(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for r in self.state.lock().unwrap().records.iter() {
            if let Some(f) = r.fault {
                *out.entry(f).or_default() += 1;
            }
        }
        out
    }
}

type Answer = Response<Full<Bytes>>;

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

async fn handle(
    st: Arc<Mutex<State>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Answer, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let service = service_of(&parts.headers);
    let (action, token) = action_and_token(&service, &parts.method, parts.uri.path(), &body);
    let key = token.as_ref().map(|t| format!("{service}/{action}/{t}"));
    // Draw the fault and look the token up under one lock.
    let (fault, cached) = {
        let mut s = st.lock().unwrap();
        let cached = key.as_ref().and_then(|k| s.answers.get(k).cloned());
        let rules: Vec<Rule> = s
            .rules
            .iter()
            .filter(|r| r.matches(&action))
            .cloned()
            .collect();
        let mut fault = None;
        for r in rules {
            if s.draw() < r.percent {
                fault = Some(r.fault);
                break;
            }
        }
        s.records.push(Record {
            service: service.clone(),
            action: action.clone(),
            token: token.clone(),
            fault: fault.as_ref().map(Fault::kind),
            replayed: cached.is_some() && fault.is_none(),
        });
        (fault, cached)
    };
    match &fault {
        Some(Fault::Throttle) => return Ok(error_answer(&service, true)),
        Some(Fault::ServerError) => return Ok(error_answer(&service, false)),
        Some(Fault::DropBefore) => return Err(Dropped),
        Some(Fault::Latency(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let path = decode(parts.uri.path().trim_matches('/'));
    if service == "eks" && action.starts_with("Describe") && rest_hidden(&st, &path) {
        return Ok(not_found_answer(&path));
    }
    let (status, headers, mut out) = match cached {
        Some(c) => c,
        None => {
            let (status, headers, out) = forward(upstream, &parts, body).await?;
            if (200..300).contains(&status)
                && let Some(k) = &key
            {
                st.lock()
                    .unwrap()
                    .answers
                    .insert(k.clone(), (status, headers.clone(), out.clone()));
            }
            (status, headers, out)
        }
    };
    if (200..300).contains(&status) {
        let mut s = st.lock().unwrap();
        if let Some(Fault::Hide(d)) = &fault
            && let Some(h) = created(&service, &action, &out)
        {
            s.hidden.push((h, Instant::now() + *d));
        }
        let now = Instant::now();
        s.hidden.retain(|h| h.1 > now);
        let hide: Vec<(String, String)> = s
            .hidden
            .iter()
            .filter_map(|(h, _)| match h {
                Hidden::Item { describe, tag, id } if *describe == action => {
                    Some((tag.clone(), id.clone()))
                }
                _ => None,
            })
            .collect();
        // A List of EKS objects leaves out the names hidden under its path.
        let names: Vec<String> = s
            .hidden
            .iter()
            .filter_map(|(h, _)| match h {
                Hidden::Rest { path: p } => p
                    .rsplit_once('/')
                    .filter(|(parent, _)| *parent == path)
                    .map(|(_, name)| name.to_string()),
                _ => None,
            })
            .collect();
        drop(s);
        if service == "eks" && action.starts_with("List") && !names.is_empty() {
            out = Bytes::from(hide_names(&out, &names));
        } else if !hide.is_empty()
            && let Ok(text) = std::str::from_utf8(&out)
        {
            out = Bytes::from(hide_items(text, &hide));
        }
    }
    if fault == Some(Fault::DropAfter) {
        return Err(Dropped);
    }
    // moto's own headers go along (EKS's REST-JSON errors name their type in
    // x-amzn-errortype), but not the framing: the body may have been cut.
    let mut answer = Response::builder().status(status);
    for (k, v) in headers.iter() {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            answer = answer.header(k, v);
        }
    }
    Ok(answer.body(Full::new(out)).unwrap())
}

async fn forward(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(u16, hyper::HeaderMap, Bytes), Dropped> {
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|_| Dropped)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Dropped)?;
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    for (k, v) in parts.headers.iter() {
        b = b.header(k, v);
    }
    let resp = sender
        .send_request(b.body(Full::new(body)).map_err(|_| Dropped)?)
        .await
        .map_err(|_| Dropped)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let out = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| Dropped)?
        .to_bytes();
    Ok((status, headers, out))
}

fn error_answer(service: &str, throttle: bool) -> Answer {
    let (status, ctype, body) = match (service, throttle) {
        ("ec2", true) => (
            503,
            "text/xml",
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit \
             exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>",
        ),
        ("ec2", false) => (
            500,
            "text/xml",
            "<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has \
             occurred</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>",
        ),
        ("eks", true) => (
            429,
            "application/json",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        ("eks", false) => (
            500,
            "application/json",
            r#"{"__type":"ServerException","message":"internal error"}"#,
        ),
        (_, true) => (
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate \
             exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
        ),
        (_, false) => (
            500,
            "text/xml",
            "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>\
             internal error</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
        ),
    };
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", ctype);
    if service == "eks" {
        let t = if throttle {
            "ThrottlingException"
        } else {
            "ServerException"
        };
        r = r.header("x-amzn-errortype", t);
    }
    r.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The service of a SigV4-signed request, from its credential scope.
fn service_of(h: &hyper::HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The action and the idempotency key of a request.
fn action_and_token(
    service: &str,
    method: &hyper::Method,
    path: &str,
    body: &[u8],
) -> (String, Option<String>) {
    if service == "eks" {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let m = method.as_str();
        let action = match (m, segs.as_slice()) {
            ("POST", ["clusters"]) => "CreateCluster",
            ("GET", ["clusters"]) => "ListClusters",
            ("GET", ["clusters", _]) => "DescribeCluster",
            ("DELETE", ["clusters", _]) => "DeleteCluster",
            ("POST", ["clusters", _, "node-groups"]) => "CreateNodegroup",
            ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
            ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
            ("DELETE", ["clusters", _, "node-groups", _]) => "DeleteNodegroup",
            ("POST", ["clusters", _, "node-groups", _, "update-config"]) => "UpdateNodegroupConfig",
            _ => "EksOther",
        };
        let token = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["clientRequestToken"].as_str().map(String::from));
        return (action.to_string(), token);
    }
    let form = String::from_utf8_lossy(body);
    let params: BTreeMap<String, String> = form
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let action = params
        .get("Action")
        .cloned()
        .unwrap_or_else(|| "Unknown".into());
    let token = match action.as_str() {
        // elbv2 makes these idempotent by name; moto makes a second one.
        "CreateLoadBalancer" | "CreateTargetGroup" => params.get("Name").cloned(),
        _ => params.get("ClientToken").cloned(),
    };
    (action, token)
}

/// What a create made, to hide: an EC2 object by the Describe action it shows in, its id tag
/// and id; an EKS cluster or node group by its path.
fn created(service: &str, action: &str, body: &[u8]) -> Option<Hidden> {
    if service == "eks" {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let path = match action {
            "CreateCluster" => format!("clusters/{}", v["cluster"]["name"].as_str()?),
            "CreateNodegroup" => format!(
                "clusters/{}/node-groups/{}",
                v["nodegroup"]["clusterName"].as_str()?,
                v["nodegroup"]["nodegroupName"].as_str()?
            ),
            _ => return None,
        };
        return Some(Hidden::Rest { path });
    }
    let (describe, tag) = match action {
        "CreateVpc" => ("DescribeVpcs", "vpcId"),
        "CreateSubnet" => ("DescribeSubnets", "subnetId"),
        "CreateInternetGateway" => ("DescribeInternetGateways", "internetGatewayId"),
        "AllocateAddress" => ("DescribeAddresses", "allocationId"),
        "CreateNatGateway" => ("DescribeNatGateways", "natGatewayId"),
        "CreateRouteTable" => ("DescribeRouteTables", "routeTableId"),
        "CreateSecurityGroup" => ("DescribeSecurityGroups", "groupId"),
        "RunInstances" => ("DescribeInstances", "instanceId"),
        _ => return None,
    };
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find('<')?;
    Some(Hidden::Item {
        describe: describe.into(),
        tag: tag.into(),
        id: text[start..end].to_string(),
    })
}

/// Whether the EKS object at `path` is hidden now.
fn rest_hidden(st: &Mutex<State>, path: &str) -> bool {
    let now = Instant::now();
    st.lock()
        .unwrap()
        .hidden
        .iter()
        .any(|(h, until)| *until > now && matches!(h, Hidden::Rest { path: p } if p == path))
}

/// EKS's answer for an object it does not know.
fn not_found_answer(path: &str) -> Answer {
    let body = serde_json::json!({
        "__type": "ResourceNotFoundException",
        "message": format!("No resource found at {path}."),
    });
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", "ResourceNotFoundException")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// An EKS List answer (`{"clusters": [...]}` or `{"nodegroups": [...]}`) without `names`.
fn hide_names(body: &[u8], names: &[String]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    for field in ["clusters", "nodegroups"] {
        if let Some(list) = v.get_mut(field).and_then(|l| l.as_array_mut()) {
            list.retain(|n| !n.as_str().is_some_and(|n| names.iter().any(|h| h == n)));
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())
}

/// `xml` without the top-level `<item>`s of its result set whose own `<tag>` (or, for
/// reservations, any `<instanceId>`) is one of `hide`.
fn hide_items(xml: &str, hide: &[(String, String)]) -> String {
    // Find the first "...Set>" or "securityGroupInfo>" container, then its direct items.
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    let Some(set_start) = ["Set>", "securityGroupInfo>"]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| i + m.len()))
        .min()
    else {
        return xml.to_string();
    };
    out.push_str(&rest[..set_start]);
    rest = &rest[set_start..];
    loop {
        let trimmed = rest.trim_start();
        if !trimmed.starts_with("<item>") {
            out.push_str(rest);
            return out;
        }
        let ws = rest.len() - trimmed.len();
        // The matching </item>, counting nested items.
        let mut depth = 0usize;
        let mut i = 0;
        let bytes = trimmed.as_bytes();
        let end = loop {
            if i >= bytes.len() {
                break None;
            }
            if trimmed[i..].starts_with("<item>") {
                depth += 1;
                i += 6;
            } else if trimmed[i..].starts_with("</item>") {
                depth -= 1;
                i += 7;
                if depth == 0 {
                    break Some(i);
                }
            } else {
                i += 1;
            }
        };
        let Some(end) = end else {
            out.push_str(rest);
            return out;
        };
        let item = &trimmed[..end];
        let own = direct_children(item);
        let hidden = hide.iter().any(|(tag, id)| {
            own.iter().any(|(t, v)| t == tag && v == id)
                || (tag == "instanceId" && item.contains(&format!("<instanceId>{id}</instanceId>")))
        });
        if !hidden {
            out.push_str(&rest[..ws]);
            out.push_str(item);
        }
        rest = &trimmed[end..];
    }
}

/// The leaf children directly under an `<item>`: (tag, text).
fn direct_children(item: &str) -> Vec<(String, String)> {
    let inner = &item["<item>".len()..item.len() - "</item>".len()];
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while let Some(off) = inner[i..].find('<') {
        let at = i + off;
        let Some(close) = inner[at..].find('>') else {
            break;
        };
        let tag = &inner[at + 1..at + close];
        i = at + close + 1;
        if tag.starts_with('/') {
            depth -= 1;
            continue;
        }
        if tag.ends_with('/') {
            continue;
        }
        if depth == 0
            && let Some(end) = inner[i..].find('<')
            && inner[i + end..].starts_with(&format!("</{tag}>"))
        {
            out.push((tag.to_string(), inner[i..i + end].to_string()));
        }
        depth += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hidden_objects_own_items_go() {
        let xml = "<DescribeSecurityGroupsResponse><securityGroupInfo>\
            <item><groupId>sg-1</groupId><ipPermissions><item><groups><item><groupId>sg-2</groupId></item></groups></item></ipPermissions></item>\
            <item><groupId>sg-2</groupId></item>\
            </securityGroupInfo></DescribeSecurityGroupsResponse>";
        let out = hide_items(xml, &[("groupId".into(), "sg-2".into())]);
        assert!(out.contains("<groupId>sg-1</groupId>"), "{out}");
        assert_eq!(out.matches("<groupId>sg-2</groupId>").count(), 1, "{out}");
        let xml = "<R><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-1</instanceId></item></instancesSet></item></reservationSet></R>";
        let out = hide_items(xml, &[("instanceId".into(), "i-1".into())]);
        assert!(!out.contains("i-1"), "{out}");
        assert!(out.contains("<reservationSet></reservationSet>"), "{out}");
    }

    #[test]
    fn actions_and_tokens_of_query_and_rest_requests() {
        let (a, t) = action_and_token(
            "ec2",
            &hyper::Method::POST,
            "/",
            b"Action=RunInstances&ClientToken=uid-1%2Dx&MaxCount=1",
        );
        assert_eq!(
            (a.as_str(), t.as_deref()),
            ("RunInstances", Some("uid-1-x"))
        );
        let (a, t) = action_and_token(
            "eks",
            &hyper::Method::POST,
            "/clusters/c/node-groups",
            br#"{"clientRequestToken":"tok"}"#,
        );
        assert_eq!((a.as_str(), t.as_deref()), ("CreateNodegroup", Some("tok")));
        assert_eq!(
            created(
                "ec2",
                "CreateVpc",
                b"<x><vpc><vpcId>vpc-9</vpcId></vpc></x>"
            ),
            Some(Hidden::Item {
                describe: "DescribeVpcs".into(),
                tag: "vpcId".into(),
                id: "vpc-9".into()
            })
        );
        assert_eq!(
            created(
                "eks",
                "CreateNodegroup",
                br#"{"nodegroup":{"clusterName":"default_e1","nodegroupName":"default_e1-pool-0"}}"#
            ),
            Some(Hidden::Rest {
                path: "clusters/default_e1/node-groups/default_e1-pool-0".into()
            })
        );
        assert_eq!(
            hide_names(br#"{"clusters":["a","b"],"nextToken":null}"#, &["a".into()]),
            br#"{"clusters":["b"],"nextToken":null}"#.to_vec()
        );
    }

    #[test]
    fn draws_are_reproducible_from_the_seed() {
        let mut a = State {
            rng: 42,
            ..Default::default()
        };
        let mut b = State {
            rng: 42,
            ..Default::default()
        };
        let x: Vec<u32> = (0..20).map(|_| a.draw()).collect();
        let y: Vec<u32> = (0..20).map(|_| b.draw()).collect();
        assert_eq!(x, y);
        assert!(x.iter().all(|v| *v < 100));
    }
}
