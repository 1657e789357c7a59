//! STUN/TURN over TCP and TLS (RFC 8656 §3.1): frames are STUN messages or ChannelData
//! padded to 4 bytes, cut out of the stream with [`frame_length`]. One reader and one
//! writer task per connection; closing the connection deletes its allocation. A TLS
//! handshake must finish within [`HANDSHAKE_TIMEOUT`]. A TLS port may be shared with
//! HTTPS (tls_share.rs): browsers' connections are passed through to the HTTPS backend.
//!
//! Limits: at most [`MAX_CONNECTIONS`] connections; a frame is at most 64 KiB + header;
//! a client that sends anything else is disconnected.

use super::tls::Certificates;
use super::tls_share::{self, Destination, Replayed};
use super::{Shared, tcp_relay};
use crate::core::{ClientAddr, Transport};
use crate::proto::frame_length;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const MAX_CONNECTIONS: usize = 10_000;
/// Frames queued towards one client before new ones are dropped.
const WRITE_QUEUE: usize = 1024;

/// Accepts connections; with `tls`, each one completes a TLS handshake first.
pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<Arc<Certificates>>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "too many TCP connections; refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let transport = if tls.is_some() { Transport::Tls } else { Transport::Tcp };
        let client = ClientAddr { transport, remote };
        let conn_shared = shared.clone();
        let tls = tls.clone();
        shared.tracker.spawn(async move {
            match tls {
                None => connection(conn_shared, stream, client).await,
                Some(certificates) => {
                    let shutdown = conn_shared.shutdown.clone();
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        () = tls_connection(conn_shared, stream, client, certificates.acceptor()) => {}
                    }
                }
            }
            drop(permit);
        });
    }
}

/// A TLS connection: our own handshake then TURN, or, when the port is shared with HTTPS
/// and the ClientHello is a browser's, passed through to the HTTPS backend.
async fn tls_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    client: ClientAddr,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    let remote = client.remote;
    let mut already_read = Vec::new();
    if let Some(backend) = shared.config.tls_https_backend.clone() {
        let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls_share::read_client_hello(&mut stream)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "no TLS ClientHello"),
            Err(_) => return tracing::debug!(%remote, "TLS ClientHello timed out"),
        };
        let (read, destination) = hello;
        if destination == Destination::Https {
            let proxy_protocol = shared.config.tls_https_proxy_protocol;
            if let Err(e) = tls_share::pass_through(stream, &read, &backend, proxy_protocol).await {
                tracing::debug!(%remote, %backend, error = %e, "HTTPS pass-through ended");
            }
            return;
        }
        already_read = read;
    }
    let stream = Replayed::new(already_read, stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => connection(shared, stream, client).await,
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

async fn connection<S>(shared: Arc<Shared>, stream: S, client: ClientAddr)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let (bind_tx, mut bind_rx) = oneshot::channel();
    {
        let mut state = shared.lock();
        state.tcp_clients.insert(client, tx.clone());
        state.data_binds.insert(client, bind_tx);
    }
    let mut writer_task = shared.tracker.spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    let mut piped = false;
    'read: loop {
        let read = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            r = reader.read(&mut chunk) => r,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut start = 0;
        loop {
            match frame_length(&buf[start..]) {
                Err(()) => {
                    tracing::debug!(remote = %client.remote, "not STUN or ChannelData; closing");
                    break 'read;
                }
                Ok(Some((_, len))) if buf.len() - start >= len => {
                    let frame = &buf[start..start + len];
                    shared.drive(|core, now| core.handle_client(now, client, frame));
                    start += len;
                    if let Ok(bound) = bind_rx.try_recv() {
                        // An RFC 6062 data connection: after its ConnectionBind, bytes
                        // both ways, no framing.
                        let already_read = buf[start..].to_vec();
                        tcp_relay::pipe(&shared, bound, &mut reader, tx.clone(), already_read).await;
                        piped = true;
                        break 'read;
                    }
                }
                _ => break,
            }
        }
        buf.drain(..start);
    }
    shared.drive(|core, _| core.handle_client_closed(client));
    {
        let mut state = shared.lock();
        state.tcp_clients.remove(&client);
        state.data_binds.remove(&client);
    }
    drop(tx);
    // A piped peer's last bytes may still be queued: let the writer send them, briefly.
    if !piped || tokio::time::timeout(Duration::from_secs(2), &mut writer_task).await.is_err() {
        writer_task.abort();
    }
}
