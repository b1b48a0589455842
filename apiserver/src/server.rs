//! The HTTPS server: TLS with optional client certificates, bearer-token auth, and dispatch to
//! discovery, OpenAPI, health and the resource verbs.
//!
//! Authentication: a client certificate signed by the client CA (CN = user, O = groups), or
//! `Authorization: Bearer <token>` ([`crate::authz::Auth::authenticate`]). Anything else gets
//! 401 with a Status body. `/healthz`, `/livez`, `/readyz` and `/version` are open, as
//! kube-apiserver's default RBAC makes them; every other request is authorized
//! ([`crate::authz`]) before it is served.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use axum::body::Body;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::{
    api::{Api, Call, Part},
    discovery,
    error::ApiError,
    request::{self, Query},
    tls::{self, CertKey},
    warnings, watch as watch_stream,
};

pub use crate::authz::Identity;

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serving certificate.
    pub serving: CertKey,
    /// PEM of the CA client certificates must chain to.
    pub client_ca_pem: String,
    /// Authentication and authorization.
    pub auth: Arc<crate::authz::Auth>,
    /// `/version` from the control-plane Nodes (simulated workload clusters).
    pub version_from_nodes: bool,
}

/// A running server.
pub struct Server {
    /// The address it listens on (with the real port).
    pub addr: SocketAddr,
    /// Its state.
    pub api: Arc<Api>,
    stop: watch::Sender<bool>,
    /// The accept loop of its own listener (`None` on a shared one).
    task: Option<tokio::task::JoinHandle<()>>,
    /// Its route on a shared listener, removed at shutdown.
    route: Option<crate::listener::Registration>,
}

impl Server {
    /// Stops accepting, closes every connection (watches end) and waits for the accept loop.
    pub async fn shutdown(self) {
        drop(self.route);
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

pub(crate) struct Shared {
    api: Arc<Api>,
    auth: Arc<crate::authz::Auth>,
    address: String,
    version_from_nodes: bool,
}

/// Binds and serves until [`Server::shutdown`].
pub async fn serve(api: Arc<Api>, config: Config) -> std::io::Result<Server> {
    serve_on(api, config, None).await
}

/// Like [`serve`]; with `shared`, served at `config.listen` through that shared listener
/// (whose port it must be) instead of a listener of its own.
pub async fn serve_on(
    api: Arc<Api>,
    config: Config,
    shared: Option<&Arc<crate::listener::Loopback>>,
) -> std::io::Result<Server> {
    let tls_config = tls::server_config(&config.serving, &config.client_ca_pem)
        .map_err(std::io::Error::other)?;
    let acceptor = TlsAcceptor::from(tls_config);
    let (stop, mut stopped) = watch::channel(false);
    let state = |addr: SocketAddr| {
        Arc::new(Shared {
            api: api.clone(),
            auth: config.auth.clone(),
            address: addr.to_string(),
            version_from_nodes: config.version_from_nodes,
        })
    };
    if let Some(listener) = shared {
        let addr = config.listen;
        let route = listener.register(
            addr,
            crate::listener::Route {
                acceptor,
                shared: state(addr),
                stopped,
            },
        )?;
        return Ok(Server {
            addr,
            api,
            stop,
            task: None,
            route: Some(route),
        });
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let shared = state(addr);
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    conns.spawn(connection(stream, acceptor.clone(), shared.clone()));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.abort_all();
    });
    Ok(Server {
        addr,
        api,
        stop,
        task: Some(task),
        route: None,
    })
}

/// Serves one accepted connection: TLS (the client certificate, if any, names the user),
/// then HTTP/1.1 or HTTP/2 until the client closes it.
pub(crate) async fn connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(tls) = acceptor.accept(stream).await else {
        return;
    };
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| tls::identity_of(c));
    let peer = peer.map(|(user, groups)| Identity::new(user, groups));
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, peer) = (shared.clone(), peer.clone());
        async move { Ok::<_, Infallible>(handle(shared, peer, req).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).expect("json")))
        .expect("valid response")
}

fn error_response(e: ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

fn authenticate(shared: &Shared, peer: Option<Identity>, headers: &HeaderMap) -> Option<Identity> {
    if let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return shared.auth.authenticate(&shared.api, token);
    }
    peer
}

async fn handle(
    shared: Arc<Shared>,
    peer: Option<Identity>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = request::decode_path(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    // HEAD is a GET whose body is not sent.
    let head = parts.method == Method::HEAD;
    let method = if head {
        Method::GET
    } else {
        parts.method.clone()
    };
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return Response::new(Body::from("ok")),
        "/version" => {
            let mut v = discovery::version();
            if shared.version_from_nodes
                && let Some(node_version) = control_plane_version(&shared.api)
            {
                v["gitVersion"] = serde_json::json!(node_version);
                if let Some(minor) = node_version.split('.').nth(1) {
                    v["minor"] = serde_json::json!(minor);
                }
            }
            return json_response(200, &v);
        }
        _ => {}
    }
    let Some(identity) = authenticate(&shared, peer, &parts.headers) else {
        return error_response(ApiError::unauthorized());
    };
    let bytes = match crate::body::read(body).await {
        Ok(b) => b,
        Err(e) => return error_response(e),
    };
    if let Err(e) = query.validate() {
        return error_response(e);
    }
    let result = route(
        &shared,
        &identity,
        &method,
        &path,
        &query,
        &parts.headers,
        &bytes,
    )
    .await;
    tracing::debug!(%method, %path, user = %identity.user, "request");
    let response = result.unwrap_or_else(error_response);
    if head {
        without_body(response)
    } else {
        response
    }
}

/// A response to HEAD: the GET's status and headers, with the length of its body but not the
/// body (a streamed one, a watch, is dropped unread).
fn without_body(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if let Some(len) = hyper::body::Body::size_hint(&body).exact() {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, len.into());
    }
    Response::from_parts(parts, Body::empty())
}

async fn route(
    shared: &Shared,
    identity: &Identity,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let api = &shared.api;
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || ApiError::no_route("the server could not find the requested resource");
    let attributes = crate::authz::Attributes::of_request(method, path, query);
    shared.auth.check(api, identity, &attributes)?;
    if let Some(r) = crate::authz::reviews::serve(&shared.auth, api, identity, method, path, body) {
        return r.map(|(code, v)| json_response(code, &v));
    }
    if *method == Method::GET {
        match segs.as_slice() {
            ["api"] => {
                return Ok(json_response(
                    200,
                    &discovery::api_versions(&shared.address),
                ));
            }
            ["apis"] => return Ok(json_response(200, &discovery::api_groups(&api.catalog))),
            ["api", v] => {
                return discovery::resource_list(&api.catalog, "", v)
                    .map(|r| json_response(200, &r))
                    .ok_or_else(not_found);
            }
            ["apis", g] => {
                return discovery::api_group(&api.catalog, g)
                    .map(|r| json_response(200, &r))
                    .ok_or_else(not_found);
            }
            ["apis", g, v] => {
                return discovery::resource_list(&api.catalog, g, v)
                    .map(|r| json_response(200, &r))
                    .ok_or_else(not_found);
            }
            ["openapi", "v2"] => {
                let accept = headers
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let (content_type, body) = discovery::openapi_v2(accept);
                return Ok(Response::builder()
                    .status(200)
                    .header("content-type", content_type)
                    .body(Body::from(body))
                    .expect("valid response"));
            }
            ["openapi", "v3"] => {
                return Ok(json_response(200, &discovery::openapi_root(&api.catalog)));
            }
            ["openapi", "v3", "api", v] => {
                return discovery::openapi_gv(&api.catalog, "", v)
                    .map(|r| json_response(200, &r))
                    .ok_or_else(not_found);
            }
            ["openapi", "v3", "apis", g, v] => {
                return discovery::openapi_gv(&api.catalog, g, v)
                    .map(|r| json_response(200, &r))
                    .ok_or_else(not_found);
            }
            _ => {}
        }
    }
    let target = request::parse(path).ok_or_else(not_found)?;
    let res = api
        .catalog
        .find(&target.group, &target.version, &target.plural)
        .ok_or_else(not_found)?;
    let accept_table = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let call = Call {
        res: res.clone(),
        target: &target,
        query,
        default_manager: user_agent
            .split('/')
            .next()
            .unwrap_or("unknown")
            .to_string(),
    };
    let part = match target.sub.as_deref() {
        None => Part::Main,
        Some("status") if res.status => Part::Status,
        Some("scale") if res.scale.is_some() => return scale(api, &call, method, headers, body),
        Some("eviction") if res.group.is_empty() && res.plural == "pods" => {
            let name = target.name.as_deref().ok_or_else(not_found)?;
            if *method != Method::POST {
                return Err(ApiError::method_not_supported(
                    method.as_str(),
                    "pods/eviction",
                ));
            }
            return Ok(json_response(
                201,
                &crate::eviction::evict(api, &call, name)?,
            ));
        }
        Some(_) => return Err(not_found()),
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    // Bodies are JSON (YAML for apply); protobuf is decoded for the built-in kinds kubectl's
    // typed create commands send, and CBOR is refused with 415.
    if !body.is_empty() && content_type.starts_with("application/cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    crate::authz::escalation::guard(
        &shared.auth,
        api,
        identity,
        &call,
        method,
        content_type,
        body,
    )?;
    let protobuf = content_type.starts_with("application/vnd.kubernetes.protobuf");
    let parse_body = || -> Result<Value, ApiError> {
        if protobuf {
            return crate::proto::decode(body).map_err(|e| ApiError {
                message: format!("{e} (content type {content_type})"),
                ..ApiError::unsupported_media_type(content_type)
            });
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding the body: {e}")))
    };
    let writes_json = !protobuf && matches!(*method, Method::POST | Method::PUT);
    let early_warnings = crate::body::duplicates_per_mode(&res, query, writes_json, body)?;
    let one = |v: Value| -> Value {
        if accept_table && v["kind"] != "Status" {
            crate::table::table(
                &res,
                &[&v],
                crate::table::IncludeObject::parse(query.get("includeObject")),
                json!({"resourceVersion": v["metadata"]["resourceVersion"]}),
            )
        } else {
            v
        }
    };
    let (result, warned) = warnings::capture(|| match (method.clone(), target.name.as_deref()) {
        (Method::GET, None) if query.flag("watch") => {
            let rx = watch_stream::start(api.clone(), res.clone(), &target, query, accept_table)?;
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            Ok(Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("transfer-encoding", "chunked")
                .body(Body::from_stream(stream))
                .expect("valid response"))
        }
        (Method::GET, None) => Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(api.list(&call, accept_table)?))
            .expect("valid response")),
        (Method::GET, Some(name)) if !accept_table => Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(api.get_raw(&call, name)?))
            .expect("valid response")),
        (Method::GET, Some(name)) => Ok(json_response(200, &one(api.get(&call, name)?))),
        (Method::POST, None) => Ok(json_response(201, &api.create(&call, parse_body()?)?)),
        (Method::PUT, Some(name)) => Ok(json_response(
            200,
            &api.update(&call, name, parse_body()?, part)?,
        )),
        (Method::PATCH, Some(name)) => {
            let (code, v) = api.patch(&call, name, content_type, body, part)?;
            Ok(json_response(code, &v))
        }
        (Method::DELETE, Some(name)) => {
            let options = if body.is_empty() {
                json!({})
            } else {
                parse_body()?
            };
            Ok(json_response(200, &api.delete(&call, name, &options)?))
        }
        (Method::DELETE, None) => {
            let options = if body.is_empty() {
                json!({})
            } else {
                parse_body()?
            };
            Ok(json_response(200, &api.delete_collection(&call, &options)?))
        }
        (m, _) => Err(ApiError::method_not_supported(m.as_str(), &res.plural)),
    });
    let mut response = result?;
    for w in early_warnings.into_iter().chain(warned) {
        if let Ok(v) = http::HeaderValue::from_str(&warnings::header_value(&w)) {
            response.headers_mut().append("warning", v);
        }
    }
    Ok(response)
}

/// The scale subresource (autoscaling/v1 Scale) over the resource's replica paths.
fn scale(
    api: &Arc<Api>,
    call: &Call<'_>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let name =
        call.target.name.clone().ok_or_else(|| {
            ApiError::no_route("the server could not find the requested resource")
        })?;
    let sc = call.res.scale.clone().expect("checked by the caller");
    let to_ptr = |p: &str| p.replace('.', "/");
    let view = |obj: &Value| {
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
               "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "uid": obj["metadata"]["uid"],
                            "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
               "spec": {"replicas": obj.pointer(&to_ptr(&sc.spec_replicas_path)).cloned().unwrap_or(json!(0))},
               "status": {"replicas": obj.pointer(&to_ptr(&sc.status_replicas_path)).cloned().unwrap_or(json!(0)),
                          "selector": sc.label_selector_path.as_ref().and_then(|p| obj.pointer(&to_ptr(p)).cloned()).unwrap_or(json!(""))}})
    };
    let current = api.get(call, &name)?;
    if *method == Method::GET {
        return Ok(json_response(200, &view(&current)));
    }
    let mut desired = view(&current);
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding the body: {e}")))?;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    match (method.clone(), ct.split(';').next().unwrap_or("")) {
        (Method::PUT, _) => desired = patch,
        (Method::PATCH, "application/json-patch+json") => crate::patch::json(&mut desired, &patch)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        (Method::PATCH, _) => crate::patch::merge(&mut desired, &patch),
        (m, _) => return Err(ApiError::method_not_supported(m.as_str(), "scale")),
    }
    let replicas = desired
        .pointer("/spec/replicas")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let mut merge = json!({});
    let mut node = &mut merge;
    let path: Vec<&str> = sc
        .spec_replicas_path
        .trim_start_matches('.')
        .split('.')
        .collect();
    for (i, seg) in path.iter().enumerate() {
        node[*seg] = if i + 1 == path.len() {
            replicas.clone()
        } else {
            json!({})
        };
        node = &mut node[*seg];
    }
    let (_, updated) = api.patch(
        call,
        &name,
        "application/merge-patch+json",
        &serde_json::to_vec(&merge).expect("json"),
        Part::Main,
    )?;
    Ok(json_response(200, &view(&updated)))
}

/// The lowest kubelet version among control-plane Nodes.
fn control_plane_version(api: &Api) -> Option<String> {
    let (_, nodes) = api.store.list("/nodes", None);
    nodes
        .into_iter()
        .filter_map(|(_, e)| {
            let v = e.value();
            v.pointer("/metadata/labels/node-role.kubernetes.io~1control-plane")?;
            v.pointer("/status/nodeInfo/kubeletVersion")?
                .as_str()
                .map(str::to_string)
        })
        .min_by_key(|v| {
            v.trim_start_matches('v')
                .split(['.', '-', '+'])
                .map(|p| p.parse::<u64>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
}
