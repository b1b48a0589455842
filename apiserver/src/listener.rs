//! One listening socket shared by many servers of a process, each at its own loopback
//! address: the simulated workload clusters of the in-memory provider (thousands in one
//! process) keep distinct endpoints (`127.a.b.c:<port>`), each with its own CA, serving
//! certificate and client-certificate trust, without a listener descriptor each.
//!
//! The socket listens on `0.0.0.0:<port>` bound to the loopback device (`SO_BINDTODEVICE`
//! "lo"), so only connections made on this host reach it (Linux routes the whole of 127/8 to
//! `lo`); each accepted connection is routed by the address it was made to (its local
//! address) to that server's TLS acceptor and state, before any TLS byte is read. A
//! connection to an address no server holds is closed at once. Binding to a device needs
//! Linux 5.7 or CAP_NET_RAW: [`Loopback::bind`] returns the error (`PermissionDenied`) and the
//! caller falls back to a listener per server.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, Weak},
};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::server::{Shared, connection};

type Routes = Mutex<HashMap<IpAddr, (u64, Route)>>;

/// A server's place on a shared listener.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) shared: Arc<Shared>,
    /// Turns true (or its sender goes) when the server stops: its connections end.
    pub(crate) stopped: watch::Receiver<bool>,
}

/// A listener on `0.0.0.0:<port>` of the loopback device, routing connections by the
/// address they were made to.
pub struct Loopback {
    port: u16,
    routes: Arc<Routes>,
    next_id: std::sync::atomic::AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

/// Backlog of the shared listener: every cluster of the process connects through it, and
/// health probes of thousands of clusters start in the same instant.
const BACKLOG: u32 = 4096;

impl Loopback {
    /// Listens on `0.0.0.0:port` (0: a free port) of the loopback device. `PermissionDenied`:
    /// this process may not bind a socket to a device.
    pub fn bind(port: u16) -> io::Result<Arc<Self>> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind_device(Some(b"lo"))?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        let listener = socket.listen(BACKLOG)?;
        let port = listener.local_addr()?.port();
        let routes: Arc<Routes> = Arc::default();
        let task = tokio::spawn(accept(listener, Arc::downgrade(&routes)));
        Ok(Arc::new(Self {
            port,
            routes,
            next_id: Default::default(),
            task,
        }))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many servers it routes to.
    pub fn servers(&self) -> usize {
        self.routes.lock().expect("routes").len()
    }

    /// Routes connections made to `addr` to `route` until the registration is dropped.
    pub(crate) fn register(&self, addr: SocketAddr, route: Route) -> io::Result<Registration> {
        if addr.port() != self.port || !addr.ip().is_loopback() || addr.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{addr}: a server on the shared listener needs a loopback address and port {}",
                    self.port
                ),
            ));
        }
        let mut routes = self.routes.lock().expect("routes");
        if routes.contains_key(&addr.ip()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr}: another server of this process is there"),
            ));
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        routes.insert(addr.ip(), (id, route));
        Ok(Registration {
            routes: Arc::downgrade(&self.routes),
            ip: addr.ip(),
            id,
        })
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server's route on a [`Loopback`]; dropping it removes the route (new connections to its
/// address are closed; open ones end with the server's stop signal).
pub(crate) struct Registration {
    routes: Weak<Routes>,
    ip: IpAddr,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(routes) = self.routes.upgrade() {
            let mut routes = routes.lock().expect("routes");
            if routes.get(&self.ip).is_some_and(|(id, _)| *id == self.id) {
                routes.remove(&self.ip);
            }
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, routes: Weak<Routes>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or memory: a pause instead of a spin.
                tracing::debug!(error = %e, "accepting on the shared loopback listener");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(routes) = routes.upgrade() else {
            return;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let route = routes
            .lock()
            .expect("routes")
            .get(&local.ip())
            .map(|(_, r)| r.clone());
        let Some(Route {
            acceptor,
            shared,
            mut stopped,
        }) = route
        else {
            continue;
        };
        if *stopped.borrow() {
            continue;
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped.changed() => {}
                _ = connection(stream, acceptor, shared) => {}
            }
        });
    }
}
