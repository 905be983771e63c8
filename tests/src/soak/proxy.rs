//! A TCP proxy between the soak's clients and PostgreSQL that can cut or
//! stall the connections passing through it.
//!
//! A cut closes both sockets at once, as a firewall reset or a crashed load
//! balancer would; a stall stops forwarding in both directions (bytes already
//! read are held, nothing is lost) until it is resumed or cut, as a network
//! partition would. A stall is always ended by the fault injector, so no
//! connection stays stuck past the stall it was given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a proxied connection is allowed to do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    Stalled,
    Cut,
}

type Conns = Mutex<BTreeMap<u64, watch::Sender<Flow>>>;

/// A running proxy on `127.0.0.1:<port>`; stops accepting when dropped.
pub struct Proxy {
    addr: SocketAddr,
    conns: Arc<Conns>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards every
    /// connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let conns: Arc<Conns> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            conns.clone(),
            accepted.clone(),
            stop.clone(),
        ));
        Ok(Proxy {
            addr,
            conns,
            accepted,
            stop,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Ids of the connections open now, oldest first.
    pub fn connections(&self) -> Vec<u64> {
        lock(&self.conns).keys().copied().collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes these connections (both sides) now.
    pub fn cut(&self, ids: &[u64]) -> usize {
        self.set(ids, Flow::Cut)
    }

    /// Stops forwarding on these connections until [`resume`](Self::resume)
    /// or [`cut`](Self::cut).
    pub fn stall(&self, ids: &[u64]) -> usize {
        self.set(ids, Flow::Stalled)
    }

    /// Lets stalled connections flow again.
    pub fn resume(&self, ids: &[u64]) -> usize {
        self.set(ids, Flow::Open)
    }

    /// Resumes every stalled connection (the end of the fault phase).
    pub fn resume_all(&self) {
        for tx in lock(&self.conns).values() {
            tx.send_if_modified(|f| {
                let stalled = *f == Flow::Stalled;
                if stalled {
                    *f = Flow::Open;
                }
                stalled
            });
        }
    }

    fn set(&self, ids: &[u64], flow: Flow) -> usize {
        let conns = lock(&self.conns);
        ids.iter()
            .filter_map(|id| conns.get(id))
            .filter(|tx| tx.send(flow).is_ok())
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        let ids = self.connections();
        self.cut(&ids);
    }
}

fn lock(conns: &Conns) -> std::sync::MutexGuard<'_, BTreeMap<u64, watch::Sender<Flow>>> {
    conns
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    conns: Arc<Conns>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => return,
        };
        let Ok((client, _)) = client else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let id = accepted.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Flow::Open);
        lock(&conns).insert(id, tx);
        let conns = conns.clone();
        tokio::spawn(async move {
            serve(client, upstream, rx).await;
            lock(&conns).remove(&id);
        });
    }
}

/// Forwards one connection until either side closes or it is cut.
async fn serve(client: TcpStream, upstream: SocketAddr, flow: watch::Receiver<Flow>) {
    // PostgreSQL being down (a crash fault) shows as a refused connection;
    // the client sees its socket closed, as it would without the proxy.
    let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream));
    let Ok(Ok(server)) = connect.await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    // When one direction ends, the other future is dropped with its halves:
    // both sockets close.
    tokio::select! {
        () = pump(client_rd, server_wr, flow.clone()) => {}
        () = pump(server_rd, client_wr, flow) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut flow: watch::Receiver<Flow>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !flowing(&mut flow).await {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = cut(&mut flow) => return,
        };
        // A stall that began while we were reading holds these bytes.
        if !flowing(&mut flow).await {
            return;
        }
        tokio::select! {
            r = to.write_all(&buf[..n]) => if r.is_err() { return },
            () = cut(&mut flow) => return,
        }
    }
}

/// Waits while stalled; false once cut (or the proxy is gone).
async fn flowing(flow: &mut watch::Receiver<Flow>) -> bool {
    match flow.wait_for(|f| *f != Flow::Stalled).await {
        Ok(f) => *f == Flow::Open,
        Err(_) => false,
    }
}

/// Resolves when the connection is cut.
async fn cut(flow: &mut watch::Receiver<Flow>) {
    let _ = flow.wait_for(|f| *f == Flow::Cut).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_then_cuts_both_sides() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 4];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        let proxy = Proxy::start(upstream).await.unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(proxy.cut(&proxy.connections()), 1);
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("a cut connection closes")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
