//! An in-process plane driven the way a user drives one: kubectl and curl as child processes
//! (curl for what kubectl cannot send: raw bodies, HEAD, HTTP/2, garbage parameters) and a
//! kube client, all through the kubeconfig, CA and token the plane wrote.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::Arc,
};

use kube::Client;
use slipway_apiserver::{
    api::Api,
    plane::{Options, Plane},
    server::{self, Server},
    store::Store,
    tls,
};

use crate::{client, temp_dir, text};

/// Where kubectl and curl reach a server: its URL, CA file, token and kubeconfig.
pub struct Access {
    /// `https://127.0.0.1:port`.
    pub url: String,
    /// A private dir: kubeconfig, CA, kubectl's HOME, request bodies.
    pub dir: PathBuf,
    /// The admin kubeconfig file.
    pub kubeconfig: PathBuf,
    ca: PathBuf,
    token: String,
}

/// A curl answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers as received (lower-cased names not guaranteed).
    pub headers: String,
    /// Response body.
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Access {
    fn new(tag: &str, url: String, ca_pem: &str, kubeconfig: &str) -> Self {
        let dir = temp_dir(tag);
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, ca_pem).unwrap();
        let kc = dir.join("kubeconfig");
        std::fs::write(&kc, kubeconfig).unwrap();
        let token = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .expect("the kubeconfig has a token")
            .to_string();
        Self {
            url,
            dir,
            kubeconfig: kc,
            ca,
            token,
        }
    }

    /// Runs kubectl against the plane. Blocks this worker thread only (the plane keeps
    /// serving on the others): call it from a multi-threaded tokio test.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        tokio::task::block_in_place(|| {
            let home = self.dir.join("home");
            std::fs::create_dir_all(&home).unwrap();
            let mut child = Command::new("kubectl")
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig)
                .env("HOME", &home)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kubectl on PATH");
            if let Some(input) = stdin {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            child.wait_with_output().unwrap()
        })
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// kubectl that must fail; its stderr.
    pub fn kubectl_err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// curl `method path` (path with its query) with the admin token, `extra` curl arguments
    /// and an optional body (sent as JSON unless `extra` sets a content type).
    pub fn curl(&self, method: &str, path: &str, body: Option<&[u8]>, extra: &[&str]) -> Answer {
        tokio::task::block_in_place(|| {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let headers = self.dir.join(format!("h-{n}"));
            let out_body = self.dir.join(format!("o-{n}"));
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "-m", "20", "--cacert"])
                .arg(&self.ca)
                .args(["-H", &format!("Authorization: Bearer {}", self.token)])
                .arg("-D")
                .arg(&headers)
                .arg("-o")
                .arg(&out_body)
                .args(["-w", "%{http_code}"]);
            if method == "HEAD" {
                cmd.arg("-I");
            } else {
                cmd.args(["-X", method]);
            }
            if let Some(b) = body {
                let f = self.dir.join(format!("b-{n}"));
                std::fs::write(&f, b).unwrap();
                if !extra
                    .iter()
                    .any(|a| a.to_lowercase().starts_with("content-type"))
                {
                    cmd.args(["-H", "Content-Type: application/json"]);
                }
                cmd.arg("--data-binary").arg(format!("@{}", f.display()));
            }
            cmd.args(extra).arg(format!("{}{path}", self.url));
            let out = cmd.output().expect("curl on PATH");
            let status = text(&out.stdout).trim().parse().unwrap_or_else(|_| {
                panic!(
                    "curl {method} {path}: {}{}",
                    text(&out.stdout),
                    text(&out.stderr)
                )
            });
            Answer {
                status,
                headers: std::fs::read_to_string(&headers).unwrap_or_default(),
                body: std::fs::read_to_string(&out_body).unwrap_or_default(),
            }
        })
    }
}

/// A management plane in-process with kubectl, curl and kube-client access.
pub struct Local {
    /// The plane.
    pub plane: Plane,
    /// How to reach it.
    pub access: Access,
    /// A kube client for it.
    pub client: Client,
}

impl std::ops::Deref for Local {
    type Target = Access;

    fn deref(&self) -> &Access {
        &self.access
    }
}

impl Local {
    /// A plane in memory.
    pub async fn start(tag: &str) -> Self {
        Self::start_with(tag, Options::default()).await
    }

    /// A plane with `opts`.
    pub async fn start_with(tag: &str, opts: Options) -> Self {
        let plane = Plane::start(opts).await.expect("plane starts");
        let access = Access::new(tag, plane.url(), &plane.ca.cert_pem, &plane.kubeconfig);
        let client = client(&plane).await;
        Self {
            plane,
            access,
            client,
        }
    }

    /// Stops the plane and removes the access dir.
    pub async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.access.dir);
        self.plane.shutdown().await;
    }
}

/// A bare server (no bootstrap namespaces, no GC) over a store that keeps only `history`
/// events for watch resumption, so a test can make a resourceVersion too old quickly.
pub struct ShortHistory {
    /// The server.
    pub server: Server,
    /// How to reach it.
    pub access: Access,
    /// A kube client for it.
    pub client: Client,
}

impl ShortHistory {
    /// Starts one; the `default` namespace exists.
    pub async fn start(tag: &str, history: usize) -> Self {
        let ca = tls::new_ca("test-ca").unwrap();
        let serving = tls::serving_cert(&ca, &["127.0.0.1".to_string()]).unwrap();
        let token = "short-history-token".to_string();
        let api = Arc::new(Api::new(Arc::new(Store::in_memory_sized(history, 256))));
        let server = server::serve(
            api,
            server::Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                serving,
                client_ca_pem: ca.cert_pem.clone(),
                auth: Arc::new(
                    slipway_apiserver::authz::Auth::new(
                        slipway_apiserver::authz::Mode::AlwaysAllow,
                        &token,
                        None,
                        &temp_dir(&format!("{tag}-auth")),
                    )
                    .unwrap(),
                ),
                version_from_nodes: false,
            },
        )
        .await
        .unwrap();
        let kubeconfig = slipway_apiserver::plane::kubeconfig(&server.addr, &ca.cert_pem, &token);
        let access = Access::new(
            tag,
            format!("https://{}", server.addr),
            &ca.cert_pem,
            &kubeconfig,
        );
        let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        let created = access.curl(
            "POST",
            "/api/v1/namespaces",
            Some(br#"{"metadata":{"name":"default"}}"#),
            &[],
        );
        assert_eq!(created.status, 201, "{}", created.body);
        Self {
            server,
            access,
            client,
        }
    }
}
