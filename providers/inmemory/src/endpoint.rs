//! Endpoints of simulated workload API servers, and the listeners that serve them.
//!
//! Every cluster gets its own endpoint `127.a.b.c:<port>` (Linux routes all of 127/8 to the
//! loopback device; 127.0.0.0/16 is left to other programs): the clusters of one process
//! share one port and one listening socket ([`Loopback`]), which hands each connection to the
//! server of the address it was made to, so a cluster costs no listener descriptor while its
//! endpoint, CA, serving certificate and kubeconfig stay its own (tools keying clusters by
//! server URL, as Argo CD does, still see distinct clusters). An address is claimed by
//! creating `<root>/.endpoints/<address>:<port>` (exclusively, so two processes sharing a
//! root never hand out the same one) and released when the cluster is deleted.
//!
//! Where this process may not bind a socket to a device (before Linux 5.7 without
//! CAP_NET_RAW), every cluster gets `127.0.0.1` and a port of its own, served by a listener of
//! its own, as before; that is logged once. A listener per port is made on demand, so a
//! cluster whose endpoint names another port (created by an earlier run, or by the process
//! it was moved from with `slipway move`) is served here once that port is free.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

use slipway_apiserver::listener::Loopback;
use slipway_providers::ProviderError;

/// Endpoints and listeners of one provider (clones of the provider share them).
pub struct Endpoints {
    root: PathBuf,
    /// Ports handed out to clusters with a listener of their own, never reused.
    own_ports: Mutex<HashSet<u16>>,
    /// The shared listeners, by port.
    listeners: Mutex<HashMap<u16, Arc<Loopback>>>,
    /// The port new clusters share; `None`: listeners per cluster (no device binding).
    shared_port: OnceLock<Option<u16>>,
}

impl Endpoints {
    /// Endpoints claimed under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            own_ports: Default::default(),
            listeners: Default::default(),
            shared_port: OnceLock::new(),
        }
    }

    fn claims(&self) -> PathBuf {
        self.root.join(".endpoints")
    }

    /// The port new clusters share, binding its listener on first use.
    fn shared_port(&self) -> Option<u16> {
        *self.shared_port.get_or_init(|| {
            let mut tried = HashSet::new();
            loop {
                let port = match free_port(&tried) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "no port for the shared workload listener; every simulated cluster gets a listener of its own");
                        return None;
                    }
                };
                tried.insert(port);
                match Loopback::bind(port) {
                    Ok(l) => {
                        self.listeners.lock().expect("listeners").insert(port, l);
                        return Some(port);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "binding a socket to the loopback device is not permitted (needs Linux 5.7+ or CAP_NET_RAW): every simulated workload cluster gets a listener of its own on 127.0.0.1, one descriptor more per cluster");
                        return None;
                    }
                }
            }
        })
    }

    /// A new endpoint for the cluster `key` (`<namespace>/<name>`).
    pub fn allocate(&self, key: &str) -> Result<(IpAddr, u16), ProviderError> {
        let Some(port) = self.shared_port() else {
            let mut taken = self.own_ports.lock().expect("ports");
            let port = free_port(&taken)?;
            taken.insert(port);
            return Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        };
        let dir = self.claims();
        std::fs::create_dir_all(&dir)
            .map_err(|e| ProviderError::transient(format!("{}: {e}", dir.display())))?;
        let seed = fnv(key);
        // 127.1.0.0 - 127.255.255.255 minus .0 and .255 hosts: about 16.6 million addresses.
        for i in 0..1_000_000u64 {
            let h = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let ip = Ipv4Addr::new(
                127,
                1 + (h % 255) as u8,
                (h >> 8) as u8,
                1 + ((h >> 16) % 254) as u8,
            );
            let claim = dir.join(format!("{ip}:{port}"));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&claim)
            {
                Ok(_) => return Ok((IpAddr::V4(ip), port)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(ProviderError::transient(format!(
                        "{}: {e}",
                        claim.display()
                    )));
                }
            }
        }
        Err(ProviderError::transient(format!(
            "no free loopback address for port {port} under {}",
            dir.display()
        )))
    }

    /// Whether this process listens on `port` of the loopback device: then no other process
    /// can serve an address on it (the port is this process's), though the connect of a
    /// liveness check succeeds for every address.
    pub fn listens_on(&self, port: u16) -> bool {
        self.listeners
            .lock()
            .expect("listeners")
            .contains_key(&port)
    }

    /// Releases the endpoint of a deleted cluster.
    pub fn release(&self, host: &str, port: i32) {
        let _ = std::fs::remove_file(self.claims().join(format!("{host}:{port}")));
    }

    /// The shared listener serving `ip:port`, made now if this process has none on that port;
    /// `None`: the server listens on its own (127.0.0.1, or no device binding here).
    pub fn listener(&self, ip: IpAddr, port: u16) -> Result<Option<Arc<Loopback>>, ProviderError> {
        if !ip.is_loopback() || ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip.is_ipv6() {
            return Ok(None);
        }
        self.shared_port();
        let mut listeners = self.listeners.lock().expect("listeners");
        if let Some(l) = listeners.get(&port) {
            return Ok(Some(l.clone()));
        }
        match Loopback::bind(port) {
            Ok(l) => {
                listeners.insert(port, l.clone());
                Ok(Some(l))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ProviderError::transient(
                format!("port {port} of the loopback device is in use by another process"),
            )),
            // No device binding here: a listener of its own at exactly that address.
            Err(_) => Ok(None),
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A free port for a cluster endpoint, outside the kernel's ephemeral range: a port handed
/// out there could be taken as the local port of some outgoing connection before the
/// workload API server binds it. Ports in `taken` are skipped.
fn free_port(taken: &HashSet<u16>) -> Result<u16, ProviderError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (first, last) = if low > 11_000 {
        (10_000, low - 1)
    } else {
        (low, u16::MAX)
    };
    let span = u32::from(last - first) + 1;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for i in 0..span {
        let port = first + ((seed.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(ProviderError::transient(format!(
        "no free port on 127.0.0.1 between {first} and {last}"
    )))
}
