//! The accept loop: HTTP/1.1 connections with the request-head limits of `server` (size, field
//! count, time to send it, which also closes idle keep-alive connections), at most
//! `max_connections` at once, the peer address on every request (for the unauthenticated rate
//! limit), TLS termination when `server.tls` is set, and a bounded drain at shutdown.

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
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use amas_config::{ServerConfig, TlsConfig};

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = Arc::new(builder(config));
    let tls = config.tls.as_ref().map(acceptor).transpose()?;
    let handshake_timeout = config.header_read_timeout;
    let slots = Arc::new(Semaphore::new(config.max_connections));
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
        // Responses and SSE events are small writes: without TCP_NODELAY, Nagle's algorithm and
        // the client's delayed ACK can hold each back for tens of milliseconds.
        if let Err(e) = stream.set_nodelay(true) {
            warn!(error = %e, "Cannot set TCP_NODELAY on a connection.");
        }
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
