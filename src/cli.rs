//! Command-line interface: parses arguments and dispatches to the crates.

use std::{collections::BTreeMap, io::Read, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use slipway_generate::{self as generate, Infrastructure, vars};

use crate::providers;

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Cluster-API-style cluster lifecycle provisioner"
)]
struct Cli {
    /// Log format on stderr: text or json. The level comes from RUST_LOG (default info).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition slipway serves, as multi-document YAML.
    Crds {
        /// Write one file per CRD into this directory instead (as committed under config/crd/).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Run an embedded management plane (Kubernetes-compatible API server) on this machine.
    Up(UpArgs),
    /// Run the controllers against the cluster of KUBECONFIG (or the in-cluster config).
    Controller(ControllerArgs),
    /// Generate manifests (clusterctl-compatible).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Read objects of the management cluster: `slipway get kubeconfig NAME`.
    #[command(subcommand)]
    Get(crate::clusterctl::GetCommand),
    /// Show a cluster as a tree with what is not ready and why.
    #[command(subcommand)]
    Describe(crate::clusterctl::DescribeCommand),
    /// Delete a cluster: `slipway delete cluster NAME --wait`.
    #[command(subcommand)]
    Delete(crate::clusterctl::DeleteCommand),
    /// Install slipway (CRDs, RBAC, controller Deployment) into the current cluster.
    Init(crate::clusterctl::InitArgs),
    /// Measure how many clusters one slipway runs (embedded plane, or --kubeconfig's, + in-memory provider).
    Bench(crate::clusterctl::BenchArgs),
    /// Move a namespace's clusters to another management cluster (or to/from a directory),
    /// as `clusterctl move`: `slipway move --to-kubeconfig target.kubeconfig`.
    Move(crate::clusterctl::MoveArgs),
}

#[derive(Args)]
struct UpArgs {
    /// Where state, certificates, token and kubeconfig live (default $XDG_DATA_HOME/slipway or
    /// ~/.local/share/slipway).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Port to listen on; 0 picks a free port (the kubeconfig carries the real one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: std::net::IpAddr,
    /// Do not run the controllers in-process (run `slipway controller` separately).
    #[arg(long)]
    no_controller: bool,
    /// Encrypt Secrets at rest with the keys of this YAML file (`keys: [{name, secret}]`,
    /// secret = base64 of 32 bytes; AES-256-GCM). The first key encrypts, every key decrypts;
    /// at start, stored Secrets are re-encrypted with the first key (rotation).
    #[arg(long, value_name = "FILE")]
    encryption_key_file: Option<PathBuf>,
    /// Authorizer of the plane: RBAC (Kubernetes RBAC; the admin kubeconfig's user is in
    /// system:masters) or AlwaysAllow (every authenticated user may do everything).
    #[arg(long, default_value = "RBAC", value_name = "MODE")]
    authorization_mode: slipway_apiserver::authz::Mode,
    /// Static bearer tokens, as kube-apiserver's --token-auth-file: CSV lines of
    /// token,user,uid,"group1,group2".
    #[arg(long, value_name = "FILE")]
    token_auth_file: Option<PathBuf>,
    #[command(flatten)]
    manager: ManagerArgs,
}

/// Flags of the controllers, shared by `slipway controller` and `slipway up`.
#[derive(Args, Clone)]
struct ManagerArgs {
    /// Concurrent reconciles per kind.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Only reconcile objects in this namespace (default: all namespaces).
    #[arg(long, value_name = "NAMESPACE")]
    watch_namespace: Option<String>,
    /// Average requests per second to the management API server (0: unlimited). Default:
    /// 200 for `slipway controller`, unlimited for the in-process controllers of `slipway up`.
    #[arg(long, value_parser = parse_qps)]
    kube_api_qps: Option<f64>,
    /// Requests allowed in a burst above --kube-api-qps.
    #[arg(long, default_value_t = 400)]
    kube_api_burst: u32,
    /// Namespace of the ClusterProfiles (default: each Cluster's own namespace).
    #[arg(long, value_name = "NAMESPACE")]
    inventory_namespace: Option<String>,
    /// Also register clusters as Argo CD cluster Secrets in --argocd-namespace.
    #[arg(long)]
    argocd_sink: bool,
    /// Namespace of the Argo CD cluster Secrets.
    #[arg(long, default_value = "argocd", value_name = "NAMESPACE")]
    argocd_namespace: String,
    /// Also join clusters to KubeFed (KubeFedCluster and token Secret in --kubefed-namespace).
    #[arg(long)]
    kubefed_sink: bool,
    /// Namespace of the KubeFedClusters.
    #[arg(
        long,
        default_value = "kube-federation-system",
        value_name = "NAMESPACE"
    )]
    kubefed_namespace: String,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9440).
    #[arg(long, value_name = "ADDR")]
    metrics_address: Option<std::net::SocketAddr>,
    /// Take a coordination.k8s.io Lease before reconciling, so only one replica works.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader-election Lease (`slipway-controller`).
    #[arg(long, default_value = "kube-system", value_name = "NAMESPACE")]
    leader_election_namespace: String,
    /// Seconds between health probes of registered clusters.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    probe_interval: u64,
    /// Only reconcile objects labelled cluster.x-k8s.io/watch-filter=VALUE (one shard of
    /// several controllers; the leader-election Lease is then slipway-controller-VALUE).
    #[arg(long, value_name = "VALUE", value_parser = parse_watch_filter)]
    watch_filter: Option<String>,
}

impl ManagerArgs {
    fn process(&self) -> slipway_ops::process::Process {
        slipway_ops::process::Process {
            metrics_address: self.metrics_address,
            leader: self.leader_elect.then(|| {
                let mut cfg = slipway_ops::leader::Config::new(&self.leader_election_namespace);
                // One leader per shard: shards must not stand by for each other.
                if let Some(f) = &self.watch_filter {
                    cfg.name = format!("{}-{f}", cfg.name);
                }
                cfg
            }),
        }
    }

    fn options(&self, data_dir: PathBuf) -> slipway_controller::manager::Options {
        slipway_controller::manager::Options {
            data_dir,
            namespace: self.watch_namespace.clone(),
            concurrency: self.concurrency,
            registry: slipway_registry::Options {
                inventory_namespace: self.inventory_namespace.clone(),
                argocd_namespace: self.argocd_sink.then(|| self.argocd_namespace.clone()),
                kubefed_namespace: self.kubefed_sink.then(|| self.kubefed_namespace.clone()),
                probe_interval: std::time::Duration::from_secs(self.probe_interval),
                probe_timeout: std::time::Duration::from_secs(3),
                ..Default::default()
            },
            watch_filter: self.watch_filter.clone(),
        }
    }
}

#[derive(Args)]
struct ControllerArgs {
    /// Where the in-memory provider keeps simulated machines and workload clusters (default
    /// $XDG_DATA_HOME/slipway or ~/.local/share/slipway).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Serve the CRDs' conversion webhook (`POST /convert`, HTTPS) on this port, with a CA
    /// kept in Secret slipway-system/slipway-webhook-ca and injected into the CRDs' caBundle.
    #[arg(long, value_name = "PORT")]
    webhook_port: Option<u16>,
    #[command(flatten)]
    manager: ManagerArgs,
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// Print the manifests of a workload cluster: `slipway generate cluster NAME | kubectl apply -f -`.
    Cluster(GenerateClusterArgs),
}

#[derive(Args)]
struct GenerateClusterArgs {
    /// Name of the cluster (a DNS label).
    name: String,
    /// Infrastructure provider: aws, aws-eks, kind or in-memory.
    #[arg(short = 'i', long, default_value = "in-memory", value_parser = parse_infrastructure)]
    infrastructure: Infrastructure,
    /// Flavor of the provider's template (default: its default flavor).
    #[arg(short = 'f', long)]
    flavor: Option<String>,
    /// Kubernetes version, e.g. v1.31.0 (variable KUBERNETES_VERSION).
    #[arg(long)]
    kubernetes_version: Option<String>,
    /// Control-plane machines (variable CONTROL_PLANE_MACHINE_COUNT, default 1).
    #[arg(long)]
    control_plane_machine_count: Option<u32>,
    /// Worker machines (variable WORKER_MACHINE_COUNT, default 0).
    #[arg(long)]
    worker_machine_count: Option<u32>,
    /// Namespace of the objects (variable NAMESPACE, default "default").
    #[arg(short = 'n', long)]
    target_namespace: Option<String>,
    /// A label for the Cluster, key=value; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Use a clusterctl-style template (`${VAR}`, `${VAR:=default}`) from FILE, or - for stdin.
    #[arg(long, value_name = "FILE")]
    from: Option<String>,
    /// Print the variables the template takes, and exit.
    #[arg(long)]
    list_variables: bool,
    /// Write the manifests to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    write_to: Option<PathBuf>,
    /// Config file with NAME: value variables (default $XDG_CONFIG_HOME/slipway/config.yaml or
    /// ~/.config/slipway/config.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn parse_qps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err(format!("{s:?} is not a number of requests per second >= 0")),
    }
}

/// A label value (63 characters at most, alphanumerics with `-`, `_`, `.` inside), since
/// the filter is matched against the label `cluster.x-k8s.io/watch-filter`.
fn parse_watch_filter(s: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if s.is_empty()
        || s.len() > 63
        || !s.chars().all(ok_char)
        || !edges(s.chars().next())
        || !edges(s.chars().last())
    {
        return Err(format!(
            "{s:?} is not a label value (1-63 alphanumerics, '-', '_', '.'; alphanumeric at both ends)"
        ));
    }
    Ok(s.to_string())
}

fn parse_infrastructure(s: &str) -> Result<Infrastructure, String> {
    let all = providers::plugins().infrastructures();
    all.iter().find(|i| i.name == s).cloned().ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|i| i.name).collect();
        format!(
            "unknown infrastructure {s:?}; available: {}",
            names.join(", ")
        )
    })
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    // Thousands of simulated or watched clusters need more descriptors than a default soft
    // limit of 1024; an unprivileged process may go up to the hard limit.
    slipway_ops::fds::raise_at_start();
    let result = match cli.command {
        Command::Crds { output_dir: None } => {
            print!("{}", slipway_api::crds::to_yaml_stream(&providers::crds()));
            Ok(())
        }
        Command::Crds {
            output_dir: Some(dir),
        } => slipway_api::crds::write_dir(&dir, &providers::crds())
            .map(|n| eprintln!("wrote {n} CRDs to {}", dir.display()))
            .map_err(|e| anyhow::anyhow!("writing CRDs to {}: {e}", dir.display())),
        Command::Generate(GenerateCommand::Cluster(args)) => generate_cluster(args),
        Command::Up(args) => up(args),
        Command::Controller(args) => controller(args),
        Command::Get(c) => crate::clusterctl::get(c),
        Command::Describe(c) => crate::clusterctl::describe(c),
        Command::Delete(c) => crate::clusterctl::delete(c),
        Command::Init(a) => crate::clusterctl::init(a),
        Command::Bench(a) => crate::clusterctl::bench(a),
        Command::Move(a) => crate::clusterctl::move_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn generate_cluster(args: GenerateClusterArgs) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (config_path, explicit) = match &args.config {
        Some(p) => (Some(p.clone()), true),
        None => (vars::default_config_path(&env), false),
    };
    let config = match &config_path {
        Some(p) => vars::read_config(p, explicit)?,
        None => BTreeMap::new(),
    };
    let config_hint = config_path.map_or_else(
        || "no config file: HOME is not set".into(),
        |p| p.display().to_string(),
    );

    let mut flags = BTreeMap::new();
    flags.insert("CLUSTER_NAME".to_string(), args.name.clone());
    let mut set = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            flags.insert(k.to_string(), v);
        }
    };
    set("NAMESPACE", args.target_namespace.clone());
    set("KUBERNETES_VERSION", args.kubernetes_version.clone());
    set(
        "CONTROL_PLANE_MACHINE_COUNT",
        args.control_plane_machine_count.map(|n| n.to_string()),
    );
    set(
        "WORKER_MACHINE_COUNT",
        args.worker_machine_count.map(|n| n.to_string()),
    );

    let from = match args.from.as_deref() {
        None => None,
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| anyhow::anyhow!("--from -: reading stdin: {e}"))?;
            Some(s)
        }
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--from {path}: {e}"))?)
        }
    };
    let request = generate::Request {
        infrastructure: args.infrastructure,
        flavor: args.flavor.clone(),
        from,
        labels: args.labels.clone(),
        sources: vars::Sources { flags, env, config },
        config_hint,
    };
    if args.list_variables {
        print!("{}", generate::list_variables(&request)?);
        return Ok(());
    }
    let manifests = generate::generate(&request)?;
    match &args.write_to {
        Some(path) => std::fs::write(path, manifests)
            .map_err(|e| anyhow::anyhow!("--write-to {}: {e}", path.display()))?,
        None => print!("{manifests}"),
    }
    Ok(())
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("slipway"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        anyhow::anyhow!("--data-dir is required when neither XDG_DATA_HOME nor HOME is set")
    })?;
    Ok(PathBuf::from(home).join(".local/share/slipway"))
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let crds = providers::crds()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let plane = slipway_apiserver::plane::Plane::start(slipway_apiserver::plane::Options {
            data_dir: Some(data_dir.clone()),
            address: args.address,
            port: args.port,
            crds,
            version_from_nodes: false,
            encryption_key_file: args.encryption_key_file.clone(),
            auth: slipway_apiserver::authz::Options {
                mode: args.authorization_mode,
                token_file: args.token_auth_file.clone(),
            },
        })
        .await
        .map_err(|e| anyhow::anyhow!("starting the management plane in {}: {e}", data_dir.display()))?;
        tracing::info!(url = %plane.url(), data_dir = %data_dir.display(), "management plane serving");
        println!("export KUBECONFIG={}", plane.kubeconfig_path.display());
        let controllers = if args.no_controller {
            None
        } else {
            let kubeconfig = kube::config::Kubeconfig::from_yaml(&plane.kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
            let m = &args.manager;
            let client = slipway_ops::process::client(config, m.kube_api_qps.unwrap_or(0.0), m.kube_api_burst)?;
            tracing::info!("controllers running in-process");
            let opts = args.manager.options(data_dir.clone());
            let process = args.manager.process();
            Some(tokio::spawn(slipway_ops::process::run(
                client,
                opts,
                providers::plugins(),
                process,
                std::future::pending(),
            )))
        };
        match controllers {
            Some(mut c) => {
                tokio::select! {
                    _ = wait_for_signal() => c.abort(),
                    r = &mut c => {
                        if let Ok(Err(e)) = r {
                            plane.shutdown().await;
                            anyhow::bail!("controllers stopped: {e}");
                        }
                    }
                }
            }
            None => wait_for_signal().await,
        }
        tracing::info!("shutting down");
        plane.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let opts = args.manager.options(data_dir);
    let (qps, burst) = (
        args.manager.kube_api_qps.unwrap_or(200.0),
        args.manager.kube_api_burst,
    );
    let process = args.manager.process();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = kube::Config::infer().await.map_err(|e| {
            anyhow::anyhow!("no cluster to manage: set KUBECONFIG or run in a cluster ({e})")
        })?;
        let client = slipway_ops::process::client(config, qps, burst)?;
        // The webhook stops the controllers when it fails (a half-working process would hide
        // that v1beta1 is not served); the controllers' end stops the webhook.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (failed_tx, failed) = tokio::sync::oneshot::channel::<String>();
        let webhook = args.webhook_port.map(|port| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = slipway_ops::webhook::serve(client, port, async {
                    let _ = stopped.await;
                })
                .await;
                if let Err(e) = &r {
                    let _ = failed_tx.send(e.to_string());
                }
                r
            })
        });
        tracing::info!("controllers running");
        slipway_ops::process::run(client, opts, providers::plugins(), process, async {
            tokio::select! {
                () = wait_for_signal() => {}
                Ok(why) = failed => tracing::error!(error = %why, "conversion webhook failed"),
            }
            tracing::info!("shutting down");
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        let _ = stop.send(());
        if let Some(task) = webhook {
            task.await?
                .map_err(|e| anyhow::anyhow!("conversion webhook: {e}"))?;
        }
        Ok(())
    })
}
