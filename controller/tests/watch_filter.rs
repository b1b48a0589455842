//! What a `--watch-filter` shard's secondary (trigger) watches list, against an embedded
//! management plane: the Secrets and Machines of 20 clusters split over two shards, plus
//! objects of nobody's. With the filter a shard's trigger watch lists its own objects only;
//! without, it lists the whole kind. Prints the figures.

use std::{collections::BTreeMap, sync::Arc};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::watcher,
};
use slipway_runtime::{Context, runner::Runner};
use slipway_testsupport::{client, plane};

/// Objects the initial list of a watch with `config` delivers (what a cache of it holds).
async fn listed(api: &Api<Secret>, config: watcher::Config) -> Vec<String> {
    let mut names = Vec::new();
    let mut s = watcher(api.clone(), config).boxed();
    while let Some(ev) = s.try_next().await.unwrap() {
        match ev {
            watcher::Event::InitApply(o) => names.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn a_shards_trigger_watches_list_its_own_objects_only() {
    let plane = plane().await;
    let c = client(&plane).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    // What 20 control planes leave (CA, etcd, proxy, sa, kubeconfig), labelled by shard as
    // the control plane's Secrets inherit it; and Secrets of nobody's (credentials, addons).
    let mut want_a = Vec::new();
    for i in 0..20 {
        let shard = if i % 2 == 0 { "shard-a" } else { "shard-b" };
        for suffix in ["ca", "etcd", "proxy", "sa", "kubeconfig"] {
            let name = format!("c{i}-{suffix}");
            let labels = BTreeMap::from([
                ("cluster.x-k8s.io/cluster-name".to_string(), format!("c{i}")),
                (
                    "cluster.x-k8s.io/watch-filter".to_string(),
                    shard.to_string(),
                ),
            ]);
            secrets
                .create(
                    &PostParams::default(),
                    &Secret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            labels: Some(labels),
                            ..Default::default()
                        },
                        data: Some(BTreeMap::from([(
                            "k".to_string(),
                            ByteString(vec![0; 256]),
                        )])),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            if shard == "shard-a" {
                want_a.push(name);
            }
        }
    }
    for i in 0..10 {
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("user-{i}")),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let ctx = Arc::new(Context::new(c.clone()));
    let unsharded = Runner::new(ctx.clone(), Some("default".into()), 1);
    let shard_a =
        Runner::new(ctx, Some("default".into()), 1).with_watch_filter(Some("shard-a".into()));

    let all = listed(&secrets, unsharded.trigger_config()).await;
    let mut own = listed(&secrets, shard_a.trigger_config()).await;
    println!(
        "secondary Secret watch: {} objects listed unfiltered, {} with --watch-filter shard-a",
        all.len(),
        own.len()
    );
    assert_eq!(
        all.len(),
        110,
        "the whole kind: 100 control-plane Secrets and 10 others"
    );
    own.sort();
    want_a.sort();
    assert_eq!(own, want_a, "shard-a's own Secrets only");
}
