//! The plane's client for conversion webhooks of CRDs that are not slipway's own: one
//! ConversionReview `apiextensions.k8s.io/v1` per conversion, POSTed over HTTPS to
//! `clientConfig.url`, the server verified against `clientConfig.caBundle`.
//!
//! Conversion is called from synchronous code that may run on a runtime worker (of either
//! flavour), so each call runs on its own short-lived thread with a current-thread runtime:
//! it never blocks the caller's runtime reactor into a deadlock, whatever the caller is.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// How long one webhook call may take (kube-apiserver's default for conversion webhooks).
const TIMEOUT: Duration = Duration::from_secs(10);

/// `obj` converted to `desired` (`group/version`) by the webhook `conversion`
/// (`spec.conversion` of the CRD). The error is the reason, without the object's name.
pub fn convert(conversion: &Value, obj: &Value, desired: &str) -> Result<Value, String> {
    let cc = conversion
        .pointer("/webhook/clientConfig")
        .ok_or("spec.conversion.webhook.clientConfig is missing")?;
    let target = Target::from_client_config(cc)?;
    let uid = new_uid();
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": [obj]},
    });
    let body = serde_json::to_vec(&review).expect("json");
    let answer = std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the webhook client: {e}"))?
                .block_on(async {
                    tokio::time::timeout(TIMEOUT, post(&target, body))
                        .await
                        .map_err(|_| format!("no answer from {} within {TIMEOUT:?}", target.url))?
                })
        })
        .join()
        .map_err(|_| "the webhook client panicked".to_string())?
    })?;
    let review: Value = serde_json::from_slice(&answer).map_err(|e| {
        format!(
            "{} answered with something that is not JSON: {e}",
            target.url
        )
    })?;
    converted(&review, &uid, obj, desired)
}

/// The converted object out of a ConversionReview answer, checked as kube-apiserver does.
pub fn converted(review: &Value, uid: &str, obj: &Value, desired: &str) -> Result<Value, String> {
    let resp = review
        .get("response")
        .ok_or("the ConversionReview answer has no response")?;
    if resp["uid"] != uid {
        return Err(format!(
            "the ConversionReview answer has uid {}, expected {uid}",
            resp["uid"]
        ));
    }
    if resp.pointer("/result/status").and_then(Value::as_str) != Some("Success") {
        return Err(resp
            .pointer("/result/message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or("the webhook reported a failure without a message")
            .to_string());
    }
    let objs = resp["convertedObjects"]
        .as_array()
        .ok_or("the ConversionReview answer has no convertedObjects")?;
    let [out] = objs.as_slice() else {
        return Err(format!(
            "the webhook returned {} objects for 1 sent",
            objs.len()
        ));
    };
    if out["apiVersion"] != desired {
        return Err(format!(
            "the webhook returned apiVersion {}, expected {desired}",
            out["apiVersion"]
        ));
    }
    if out["kind"] != obj["kind"] {
        return Err(format!(
            "the webhook changed kind {} to {}",
            obj["kind"], out["kind"]
        ));
    }
    // Only labels and annotations of metadata may change (as kube-apiserver restores it).
    let mut out = out.clone();
    let mut meta = obj["metadata"].clone();
    for k in ["labels", "annotations"] {
        match out["metadata"].get(k) {
            Some(v) => meta[k] = v.clone(),
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    out["metadata"] = meta;
    Ok(out)
}

/// Where and how to call a webhook.
struct Target {
    url: String,
    host: String,
    port: u16,
    path: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Target {
    fn from_client_config(cc: &Value) -> Result<Self, String> {
        if let Some(svc) = cc.get("service") {
            return Err(format!(
                "clientConfig.service {}/{} is not reachable from the embedded plane (it has no cluster network); give the CRD a clientConfig.url instead",
                svc["namespace"].as_str().unwrap_or_default(),
                svc["name"].as_str().unwrap_or_default()
            ));
        }
        let url = cc["url"]
            .as_str()
            .ok_or("clientConfig has neither url nor service")?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("clientConfig.url {url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("clientConfig.url {url:?} must use https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("clientConfig.url {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let ca = cc["caBundle"].as_str().ok_or(
            "clientConfig.caBundle is missing (the embedded plane trusts no system roots for webhooks)",
        )?;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .map_err(|e| format!("clientConfig.caBundle is not base64: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("clientConfig.caBundle is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("clientConfig.caBundle holds a bad certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("clientConfig.caBundle holds no certificate".into());
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            url: url.to_string(),
            port: uri.port_u16().unwrap_or(443),
            host,
            path,
            tls: Arc::new(tls),
        })
    }
}

async fn post(t: &Target, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", t.url);
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| fail("cannot connect to", &e))?;
    let name = rustls::pki_types::ServerName::try_from(t.host.clone())
        .map_err(|e| fail("bad host name in", &e))?;
    let tls = tokio_rustls::TlsConnector::from(t.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| fail("TLS handshake failed with", &e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| fail("HTTP handshake failed with", &e))?;
    tokio::spawn(conn);
    let req = http::Request::post(t.path.as_str())
        .header(http::header::HOST, format!("{}:{}", t.host, t.port))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| fail("cannot build the request to", &e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| fail("request failed to", &e))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail("cannot read the answer of", &e))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{} answered HTTP {status}: {}",
            t.url,
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        ));
    }
    Ok(bytes.to_vec())
}

/// A random UUID (version 4) for the review's request uid.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> Value {
        json!({"apiVersion": "example.test/v2", "kind": "Gadget",
               "metadata": {"name": "g", "namespace": "default", "uid": "u1", "labels": {"a": "1"}},
               "spec": {"size": 3}})
    }

    fn answer(uid: &str, status: &str, objs: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
               "response": {"uid": uid, "convertedObjects": objs,
                            "result": {"status": status, "message": "boom"}}})
    }

    #[test]
    fn a_good_answer_keeps_metadata_but_labels_and_annotations() {
        let mut c = obj();
        c["apiVersion"] = json!("example.test/v1");
        c["metadata"]["uid"] = json!("changed");
        c["metadata"]["labels"] = json!({"b": "2"});
        let out = converted(
            &answer("x", "Success", json!([c])),
            "x",
            &obj(),
            "example.test/v1",
        )
        .unwrap();
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["apiVersion"], "example.test/v1");
    }

    #[test]
    fn bad_answers_are_errors() {
        let mut c = obj();
        c["apiVersion"] = json!("example.test/v1");
        let d = "example.test/v1";
        let e = converted(&answer("x", "Failure", json!([])), "x", &obj(), d).unwrap_err();
        assert_eq!(e, "boom");
        let e = converted(&answer("y", "Success", json!([c])), "x", &obj(), d).unwrap_err();
        assert!(e.contains("uid"), "{e}");
        let e = converted(&answer("x", "Success", json!([])), "x", &obj(), d).unwrap_err();
        assert!(e.contains("0 objects"), "{e}");
        let e = converted(&answer("x", "Success", json!([obj()])), "x", &obj(), d).unwrap_err();
        assert!(e.contains("apiVersion"), "{e}");
    }

    #[test]
    fn client_configs_that_cannot_be_called_say_why() {
        let err = |cc: Value| Target::from_client_config(&cc).err().unwrap();
        assert!(err(json!({"service": {"namespace": "ns", "name": "svc"}})).contains("ns/svc"));
        assert!(err(json!({"url": "http://x/convert", "caBundle": ""})).contains("https"));
        assert!(err(json!({"url": "https://x/convert"})).contains("caBundle"));
        assert!(err(json!({"url": "https://x/convert", "caBundle": "!!"})).contains("base64"));
        assert_eq!(new_uid().len(), 36);
    }
}
