//! The `ConversionReview` (`apiextensions.k8s.io/v1`) exchange of a conversion webhook: what
//! `/convert` answers for kube-apiserver. All objects convert or the review fails, naming the
//! object that did not (kube-apiserver requires all or nothing).

use serde_json::{Value, json};

use super::{Context, convert};

fn response(uid: &Value, converted: Option<Vec<Value>>, failure: Option<String>) -> Value {
    let mut r = json!({"uid": uid});
    match failure {
        Some(message) => r["result"] = json!({"status": "Failure", "message": message}),
        None => {
            r["convertedObjects"] = json!(converted.unwrap_or_default());
            r["result"] = json!({"status": "Success"});
        }
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": r})
}

/// Answers one review.
pub fn review(body: &Value, ctx: &Context<'_>) -> Value {
    let Some(request) = body.get("request") else {
        return response(
            &json!(""),
            None,
            Some("ConversionReview without request".into()),
        );
    };
    let uid = request.get("uid").cloned().unwrap_or(json!(""));
    let Some(desired) = request.get("desiredAPIVersion").and_then(Value::as_str) else {
        return response(
            &uid,
            None,
            Some("request.desiredAPIVersion: Required value".into()),
        );
    };
    let Some((group, version)) = desired.rsplit_once('/') else {
        return response(
            &uid,
            None,
            Some(format!(
                "request.desiredAPIVersion {desired:?} has no group"
            )),
        );
    };
    let objects = request
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(objects.len());
    for obj in &objects {
        let name = format!(
            "{} {}/{}",
            obj["kind"].as_str().unwrap_or("object"),
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or("")
        );
        let obj_group = obj["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(g, _)| g);
        if obj_group != group {
            return response(
                &uid,
                None,
                Some(format!(
                    "{name}: group {obj_group:?} cannot convert to {desired:?}"
                )),
            );
        }
        match convert(obj, version, ctx) {
            Ok(c) => out.push(c),
            Err(e) => return response(&uid, None, Some(format!("{name}: {e}"))),
        }
    }
    response(&uid, Some(out), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_object_or_fails_naming_one() {
        let ctx = Context::default();
        let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "u-1", "desiredAPIVersion": "cluster.x-k8s.io/v1beta2", "objects": [
            {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine", "metadata": {"name": "a", "namespace": "ns"},
             "spec": {"clusterName": "c", "nodeDrainTimeout": "1m"}},
            {"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "metadata": {"name": "b", "namespace": "ns"},
             "spec": {"clusterName": "c"}}
        ]}});
        let r = review(&body, &ctx);
        assert_eq!(r["kind"], "ConversionReview");
        assert_eq!(r["response"]["uid"], "u-1");
        assert_eq!(r["response"]["result"]["status"], "Success");
        let objs = r["response"]["convertedObjects"].as_array().unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["apiVersion"], "cluster.x-k8s.io/v1beta2");
        assert_eq!(objs[0]["spec"]["deletion"]["nodeDrainTimeoutSeconds"], 60);
        assert_eq!(objs[1]["metadata"]["name"], "b");

        let mut bad = body.clone();
        bad["request"]["objects"][1]["apiVersion"] = json!("cluster.x-k8s.io/v1beta1");
        bad["request"]["objects"][1]["spec"]["nodeDrainTimeout"] = json!("soon");
        let r = review(&bad, &ctx);
        assert_eq!(r["response"]["result"]["status"], "Failure");
        let msg = r["response"]["result"]["message"].as_str().unwrap();
        assert!(
            msg.contains("Machine ns/b") && msg.contains("spec.nodeDrainTimeout"),
            "{msg}"
        );
        assert!(r["response"].get("convertedObjects").is_none());

        let r = review(&json!({"kind": "ConversionReview"}), &ctx);
        assert_eq!(r["response"]["result"]["status"], "Failure");
    }
}
