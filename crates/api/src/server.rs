//! The accept loop: HTTP/1.1 connections with the request-head limits of `server` (size, field
//! count, time to send it, which also closes idle keep-alive connections), at most
//! `max_connections` at once and `max_connections_per_ip` per client address (refused at
//! accept), writes that must make progress within `write_timeout`, the peer address on every
//! request (for the unauthenticated rate limit), TLS termination when `server.tls` is set, and
//! a bounded drain at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use amas_config::{ServerConfig, TlsConfig};
use amas_telemetry::Metrics;
use amas_telemetry::metrics::ClassLabels;
use amas_types::codes;

use crate::clients::{Slots, client_addr};
use crate::timed_io::TimedIo;

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = Arc::new(builder(config));
    let tls = config.tls.as_ref().map(acceptor).transpose()?;
    let handshake_timeout = config.header_read_timeout;
    let write_timeout = config.write_timeout;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_client = Slots::<std::net::IpAddr>::new(config.max_connections_per_ip);
    // Refusals take no connection slot: a client over its cap cannot crowd others out by
    // being refused. Beyond these, a refused connection is closed without an answer.
    let refusals = Arc::new(Semaphore::new(REFUSALS_ANSWERED_AT_ONCE));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot first: beyond the limit, connections wait in the backlog.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One client cannot take every slot: beyond its share it is told so and closed,
        // before anything it sends is read.
        let Some(client_slot) = per_client.try_take(client_addr(peer.ip())) else {
            metrics
                .rate_limited
                .get_or_create(&ClassLabels {
                    class: "connections".to_owned(),
                })
                .inc();
            drop(permit);
            if let (None, Ok(answering)) = (&tls, Arc::clone(&refusals).try_acquire_owned()) {
                let limit = per_client.limit();
                amas_telemetry::tasks::spawn(
                    "api.connection_refused",
                    refuse_connection(stream, limit, answering),
                );
            }
            continue;
        };
        // Responses and SSE events are small writes: without TCP_NODELAY, Nagle's algorithm and
        // the client's delayed ACK can hold each back for tens of milliseconds.
        if let Err(e) = stream.set_nodelay(true) {
            warn!(error = %e, "Cannot set TCP_NODELAY on a connection.");
        }
        // Under TLS too: a client that stops reading stalls the socket beneath it.
        let stream = TimedIo::new(stream, write_timeout);
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req.map(Body::new)
            });
        let service = TowerToHyperService::new(service);
        let builder = Arc::clone(&builder);
        let stop = stop_rx.clone();
        let tls = tls.clone();
        amas_telemetry::tasks::spawn("api.connection", async move {
            match tls {
                None => run_connection(&builder, stream, service, stop).await,
                Some(acceptor) => {
                    // The handshake has the head's time limit: a slow client cannot hold a
                    // slot before sending a request either.
                    let shake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    match shake.await {
                        Ok(Ok(stream)) => run_connection(&builder, stream, service, stop).await,
                        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed."),
                        Err(_) => debug!("TLS handshake timed out."),
                    }
                }
            }
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // In-flight requests finish; long streams (SSE) are cut after the drain time.
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.request_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        info!("Drain time is over; closing the remaining connections.");
    }
    Ok(())
}

/// Connections over a client's cap answered with a `429` at once; more are just closed.
const REFUSALS_ANSWERED_AT_ONCE: usize = 64;

/// Answers a plain-HTTP connection over the per-client cap with a fixed `429` and closes it,
/// without reading a request (under TLS such a connection is just closed). The answer is
/// written, then the write side shut, then what the client sent is drained for a moment, so
/// the client reads the answer instead of a reset.
async fn refuse_connection(mut stream: TcpStream, limit: usize, permit: OwnedSemaphorePermit) {
    const LINGER: Duration = Duration::from_secs(1);
    let body = format!(
        r#"{{"error":{{"code":"{}","message":"too many open connections from this client address (server.max_connections_per_ip = {limit}); close idle connections and retry","request_id":""}}}}"#,
        codes::API_TOO_MANY_CONNECTIONS
    );
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answered = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0_u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, answered).await;
    debug!(limit, "Connection over the per-client cap refused.");
    drop(permit);
}

/// Serves one connection until it ends, or gracefully once `stop` changes.
async fn run_connection<I, S>(
    builder: &http1::Builder,
    io: I,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

/// The TLS acceptor for `tls` (rustls, TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
///
/// # Errors
/// An unreadable or invalid certificate chain or key, or a key that does not match.
fn acceptor(tls: &TlsConfig) -> std::io::Result<TlsAcceptor> {
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("server.tls.{what} ({}): {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad("cert_file", &tls.cert_file, &e))?;
    if certs.is_empty() {
        return Err(bad(
            "cert_file",
            &tls.cert_file,
            &"no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| bad("key_file", &tls.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("key_file", &tls.key_file, &e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.header_limit_bytes)
        .max_buf_size(config.header_limit_bytes.max(64 * 1024));
    // hyper keeps up to 100 header fields on the stack; only another limit costs a heap
    // allocation per request.
    if config.max_headers != 100 {
        builder.max_headers(config.max_headers);
    }
    builder
}
