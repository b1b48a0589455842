//! CLI wiring of the clusterctl-style commands: get kubeconfig, describe cluster, delete
//! cluster, init. The work is in `slipway_ops::clusterctl`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use slipway_ops::clusterctl as ops;

use crate::providers;

#[derive(Subcommand)]
pub enum GetCommand {
    /// Print a workload cluster's admin kubeconfig (from its `<name>-kubeconfig` Secret).
    Kubeconfig(GetKubeconfigArgs),
}

#[derive(Args)]
pub struct GetKubeconfigArgs {
    /// Cluster name.
    name: String,
    /// Namespace of the Cluster (default: the current context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Merge it into this kubeconfig file (created if missing) instead of printing it.
    #[arg(long, value_name = "FILE")]
    merge: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum DescribeCommand {
    /// Show a Cluster, its control plane, workers and machines with their readiness.
    Cluster(NamedArgs),
}

#[derive(Args)]
pub struct NamedArgs {
    /// Cluster name.
    name: String,
    /// Namespace of the Cluster (default: the current context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

#[derive(Subcommand)]
pub enum DeleteCommand {
    /// Delete a Cluster and everything it owns.
    Cluster(DeleteClusterArgs),
}

#[derive(Args)]
pub struct DeleteClusterArgs {
    #[command(flatten)]
    cluster: NamedArgs,
    /// Wait until the Cluster is gone, printing progress.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Args)]
pub struct InitArgs {
    /// Print the manifests instead of applying them.
    #[arg(long)]
    dry_run: bool,
    /// Controller image.
    #[arg(long, default_value = concat!("ghcr.io/slipway-dev/slipway:v", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Controller pods: one leads, the others stand by and serve the conversion webhook.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
}

async fn client() -> anyhow::Result<(kube::Client, String)> {
    let config = kube::Config::infer().await.map_err(|e| {
        anyhow::anyhow!("no management cluster: set KUBECONFIG or run in a cluster ({e})")
    })?;
    let ns = config.default_namespace.clone();
    Ok((kube::Client::try_from(config)?, ns))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

pub fn get(cmd: GetCommand) -> anyhow::Result<()> {
    let GetCommand::Kubeconfig(args) = cmd;
    runtime()?.block_on(async {
        let (client, default_ns) = client().await?;
        let ns = args.namespace.unwrap_or(default_ns);
        let kc = ops::kubeconfig(&client, &ns, &args.name)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        match args.merge {
            None => print!("{kc}"),
            Some(path) => {
                let existing = match std::fs::read_to_string(&path) {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => anyhow::bail!("--merge {}: {e}", path.display()),
                };
                let merged = ops::merge_kubeconfig(&existing, &kc)
                    .map_err(|e| anyhow::anyhow!("--merge {}: {e}", path.display()))?;
                slipway_pki::write_private(&path, merged.as_bytes())
                    .map_err(|e| anyhow::anyhow!("--merge {}: {e}", path.display()))?;
                eprintln!("merged cluster {} into {}", args.name, path.display());
            }
        }
        Ok(())
    })
}

pub fn describe(cmd: DescribeCommand) -> anyhow::Result<()> {
    let DescribeCommand::Cluster(args) = cmd;
    runtime()?.block_on(async {
        let (client, default_ns) = client().await?;
        let ns = args.namespace.unwrap_or(default_ns);
        let tree = ops::describe(&client, &ns, &args.name)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        print!("{}", ops::render_tree(&tree, ops::use_color()));
        Ok(())
    })
}

pub fn delete(cmd: DeleteCommand) -> anyhow::Result<()> {
    let DeleteCommand::Cluster(args) = cmd;
    runtime()?.block_on(async {
        let (client, default_ns) = client().await?;
        let ns = args.cluster.namespace.unwrap_or(default_ns);
        let wait = args.wait.then(|| Duration::from_secs(args.timeout));
        ops::delete_cluster(&client, &ns, &args.cluster.name, wait, &mut |line| {
            println!("{line}")
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))
    })
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let docs = ops::init_manifests(&args.image, args.replicas, &providers::crds())?;
    if args.dry_run {
        print!("{}", ops::to_yaml(&docs));
        return Ok(());
    }
    runtime()?.block_on(async {
        let (client, _) = client().await?;
        ops::apply_all(&client, &docs, &mut |line| println!("{line}"))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        println!(
            "slipway installed in namespace {}; watch it with: kubectl -n {} rollout status deployment/slipway-controller",
            ops::SYSTEM_NAMESPACE,
            ops::SYSTEM_NAMESPACE
        );
        Ok(())
    })
}

#[derive(Args)]
pub struct BenchArgs {
    /// Clusters to create.
    #[arg(long, default_value_t = 100)]
    clusters: u32,
    /// Control-plane machines per cluster.
    #[arg(long, default_value_t = 1)]
    control_plane_machine_count: u32,
    /// Workers per cluster.
    #[arg(long, default_value_t = 1)]
    worker_machine_count: u32,
    /// Scale mode: one cluster, its workers scaled from 0 to this many.
    #[arg(long, value_name = "W")]
    scale_workers: Option<u32>,
    /// Seconds of the idle measurement once everything is Available.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Concurrent reconciles per kind.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Create the clusters as topology Clusters of one ClusterClass.
    #[arg(long)]
    topology: bool,
    /// After the idle window, delete every Cluster and time until all are gone.
    #[arg(long)]
    delete: bool,
    /// Run the workload against the management plane of this kubeconfig (its current
    /// context; slipway's CRDs are installed if missing) instead of an embedded one. The
    /// controllers and the in-memory provider still run in this process.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let plugins = providers::plugins();
    let infrastructure = plugins
        .infrastructures()
        .into_iter()
        .find(|i| i.name == "in-memory")
        .ok_or_else(|| anyhow::anyhow!("slipway bench needs the in-memory provider"))?;
    let cfg = slipway_ops::bench::Config {
        clusters: a.clusters,
        control_plane: a.control_plane_machine_count,
        workers: a.worker_machine_count,
        scale_workers: a.scale_workers,
        idle_seconds: a.idle_seconds,
        concurrency: a.concurrency,
        timeout: Duration::from_secs(a.timeout),
        plugins,
        infrastructure,
        topology: a.topology,
        delete: a.delete,
        kubeconfig: a.kubeconfig,
    };
    let figures = runtime()?
        .block_on(slipway_ops::bench::run(cfg))
        .map_err(|e| anyhow::anyhow!(e))?;
    println!("{figures}");
    Ok(())
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["to_kubeconfig", "to_directory", "from_directory"])))]
pub struct MoveArgs {
    /// Kubeconfig of the target management cluster (it must run slipway: `slipway init`).
    #[arg(long, value_name = "FILE")]
    to_kubeconfig: Option<PathBuf>,
    /// Context of --to-kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME", requires = "to_kubeconfig")]
    to_kubeconfig_context: Option<String>,
    /// Back the objects up into this directory (one YAML file each) instead of moving them.
    #[arg(long, value_name = "DIR")]
    to_directory: Option<PathBuf>,
    /// Restore a backup of --to-directory into the cluster of KUBECONFIG.
    #[arg(long, value_name = "DIR")]
    from_directory: Option<PathBuf>,
    /// Namespace whose clusters move (default: the current context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// List every object that would move, in order; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn move_cmd(args: MoveArgs) -> anyhow::Result<()> {
    let stop_after = match std::env::var("SLIPWAY_MOVE_STOP_AFTER") {
        Ok(v) => Some(v.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("SLIPWAY_MOVE_STOP_AFTER={v:?} is not a number of writes")
        })?),
        Err(_) => None,
    };
    runtime()?.block_on(async {
        let (client, default_ns) = client().await?;
        let opts = slipway_ops::mover::Options {
            namespace: args.namespace.unwrap_or(default_ns),
            dry_run: args.dry_run,
            stop_after,
        };
        let mut out = |line: String| println!("{line}");
        let result = if let Some(file) = &args.to_kubeconfig {
            let kc = kube::config::Kubeconfig::read_from(file)
                .map_err(|e| anyhow::anyhow!("--to-kubeconfig {}: {e}", file.display()))?;
            let options = kube::config::KubeConfigOptions {
                context: args.to_kubeconfig_context.clone(),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| anyhow::anyhow!("--to-kubeconfig {}: {e}", file.display()))?;
            let target = kube::Client::try_from(config)?;
            slipway_ops::mover::move_to_cluster(&client, &target, &opts, &mut out).await
        } else if let Some(dir) = &args.to_directory {
            slipway_ops::mover::move_to_directory(&client, dir, &opts, &mut out).await
        } else if let Some(dir) = &args.from_directory {
            slipway_ops::mover::restore_from_directory(&client, dir, &opts, &mut out).await
        } else {
            unreachable!("clap requires one destination")
        };
        result.map(|_| ()).map_err(|e| anyhow::anyhow!(e))
    })
}
