//! Test support shared by every test tree of the workspace (only ever a dev-dependency):
//!
//! - [`plane`], [`plane_with`], [`client`]: a management plane in-process on 127.0.0.1 and a
//!   kube client for it;
//! - [`eventually`] (blocking) and [`eventually_async`]: polling until a check holds;
//! - [`free_port`], [`temp_dir`], [`fixture`], [`text`];
//! - [`local`]: an in-process plane with kubectl, curl and kube-client access (the hostile
//!   and fidelity suites), and a bare server with a short watch history;
//! - [`mgmt`]: `slipway up` (and `slipway controller`) as child processes and kubectl against
//!   them, for the root package's end-to-end suites;
//! - [`moto`] (feature `aws`): a real `moto_server` and AWS SDK clients against it;
//! - [`fault_proxy`] (feature `aws`): a fault-injecting, request-recording proxy in front of it.
#![forbid(unsafe_code)]

#[cfg(feature = "aws")]
pub mod fault_proxy;
pub mod local;
pub mod mgmt;
#[cfg(feature = "aws")]
pub mod moto;

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::Value;
use slipway_apiserver::plane::{Options, Plane};

pub use mgmt::{
    Mgmt, condition, generate, generate_flavor_for_moto, generate_for_moto, machines,
    register_node, slipway_bin, wait_available, wait_shape,
};

/// A management plane in-process on 127.0.0.1, a free port, in memory, without CRDs.
pub async fn plane() -> Plane {
    plane_with(None, 0, vec![]).await
}

/// A management plane on 127.0.0.1:`port` (0: a free one) storing in `data_dir` (`None`: in
/// memory) and serving `crds`.
pub async fn plane_with(data_dir: Option<PathBuf>, port: u16, crds: Vec<Value>) -> Plane {
    Plane::start(Options {
        data_dir,
        address: "127.0.0.1".parse::<IpAddr>().unwrap(),
        port,
        crds,
        version_from_nodes: false,
        encryption_key_file: None,
        auth: Default::default(),
    })
    .await
    .expect("plane starts")
}

/// A kube client for `plane`, through the kubeconfig it wrote.
pub async fn client(plane: &Plane) -> Client {
    let kc = Kubeconfig::from_yaml(&plane.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Polls `check` every 300 ms until it returns Ok or `secs` pass; the last error explains a
/// timeout. Blocks the thread.
pub fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: still not true after {secs}s: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Polls `f` every 100 ms until it returns Some or `secs` pass, on the tokio clock.
pub async fn eventually_async<T, F>(secs: u64, what: &str, mut f: F) -> T
where
    F: AsyncFnMut() -> Option<T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new, empty directory `slipway-<tag>-<pid>-<nanos>` under the system temp dir. Callers
/// remove it (or leave it, to debug).
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("slipway-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fixture of the end-to-end tests, `e2e/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
