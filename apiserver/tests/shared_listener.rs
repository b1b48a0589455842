//! Two planes on one shared loopback listener, each at its own address: every connection is
//! served by the plane whose address it was made to, with that plane's CA and client trust.

use std::{net::SocketAddr, sync::Arc};

use slipway_apiserver::{
    listener::Loopback,
    plane::{Embedding, Options, Plane},
    tls::{self, CertKey},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn connector(ca_pem: &str, cert: Option<&CertKey>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(ck) => {
            let chain = rustls_pemfile::certs(&mut ck.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut ck.key_pem.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The status code of `GET /api/v1/namespaces` at `addr`, or why there was none.
async fn list_namespaces(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let req =
        format!("GET /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

async fn plane_at(listener: &Arc<Loopback>, ip: [u8; 4]) -> Plane {
    Plane::start_with(
        Options {
            address: ip.into(),
            port: listener.port(),
            ..Default::default()
        },
        Embedding {
            listener: Some(listener.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("plane on the shared listener")
}

#[tokio::test]
async fn connections_are_routed_by_address_each_with_its_own_ca_and_client_trust() {
    let listener = Loopback::bind(0)
        .expect("binding to the loopback device (SO_BINDTODEVICE needs Linux 5.7 or CAP_NET_RAW)");
    let a = plane_at(&listener, [127, 77, 0, 1]).await;
    let b = plane_at(&listener, [127, 77, 0, 2]).await;
    assert_eq!(listener.servers(), 2);
    assert_eq!(a.server.addr.port(), b.server.addr.port(), "one port");
    assert_ne!(a.server.addr, b.server.addr, "distinct endpoints");
    assert_ne!(a.ca.cert_pem, b.ca.cert_pem, "a CA each");
    assert!(a.kubeconfig.contains(&format!("https://{}", a.server.addr)));

    let admin = |p: &Plane| {
        tls::client_cert(&p.ca, "alice", &["system:masters"]).expect("client certificate")
    };
    let (admin_a, admin_b) = (admin(&a), admin(&b));
    let to_a = connector(&a.ca.cert_pem, Some(&admin_a));
    let to_b = connector(&b.ca.cert_pem, Some(&admin_b));
    assert_eq!(list_namespaces(a.server.addr, &to_a).await, Ok(200));
    assert_eq!(list_namespaces(b.server.addr, &to_b).await, Ok(200));
    assert_eq!(
        list_namespaces(b.server.addr, &connector(&b.ca.cert_pem, None)).await,
        Ok(401),
        "no credentials: anonymous is refused"
    );

    let err = list_namespaces(b.server.addr, &to_a).await.unwrap_err();
    assert!(
        err.contains("handshake"),
        "B presents its own CA, which A's client does not trust: {err}"
    );
    let wrong_cert = connector(&b.ca.cert_pem, Some(&admin_a));
    let refused = list_namespaces(b.server.addr, &wrong_cert).await;
    assert!(
        refused.is_err(),
        "a client certificate of A's CA is refused by B: {refused:?}"
    );
    let nobody = SocketAddr::from(([127, 77, 0, 3], listener.port()));
    let refused = list_namespaces(nobody, &to_a).await;
    assert!(
        refused.is_err(),
        "an address no server holds is not served: {refused:?}"
    );

    let addr_a = a.server.addr;
    a.shutdown().await;
    assert_eq!(listener.servers(), 1);
    assert!(
        list_namespaces(addr_a, &to_a).await.is_err(),
        "a stopped server's address is not served"
    );
    assert_eq!(list_namespaces(b.server.addr, &to_b).await, Ok(200));
    b.shutdown().await;
    assert_eq!(listener.servers(), 0);
}
