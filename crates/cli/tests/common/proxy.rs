//! A TCP proxy on loopback for fault tests: `amas` processes reach a real server (PostgreSQL)
//! through it, and the test cuts every connection and refuses new ones for a while, the way a
//! database failover or a network partition looks to a client. (This kernel has no `tc netem`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    /// Bumped on every cut: each relay ends when it changes.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and relays every connection to `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (flag, upstream, cut) = (Arc::clone(&down), upstream.to_owned(), cuts.clone());
        #[expect(
            clippy::disallowed_methods,
            reason = "test scaffolding: a server or a race that ends with the test"
        )]
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = cut.subscribe();
                #[expect(
                    clippy::disallowed_methods,
                    reason = "test scaffolding: a server or a race that ends with the test"
                )]
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, down, cuts }
    }

    /// Cuts every relayed connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
