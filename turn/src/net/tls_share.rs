//! TURNS and HTTPS on one port (often 443, the one port strict networks leave open).
//!
//! The TLS listener reads each connection's ClientHello without answering it and looks at
//! the application protocols (ALPN) it offers. Browsers and other HTTPS clients always
//! offer some (`h2`, `http/1.1`; ACME's `acme-tls/1` too), and none of them is a STUN
//! protocol; TURN clients offer none (browsers do not set ALPN for `turns:`) or
//! `stun.turn` / `stun.nat-discovery` (RFC 7443). So:
//!
//! - ALPN offered, and no STUN protocol among it: HTTPS. The bytes read so far and the
//!   rest of the connection are passed through untouched to the HTTPS backend, which
//!   keeps its own certificate (Caddy, nginx); with `tls_https_proxy_protocol` a PROXY
//!   protocol v2 header goes first so the backend sees the client's address.
//! - Otherwise: TURN. The bytes read so far are replayed into our own TLS handshake.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::Acceptor;

/// The application protocols that mark a TURN or STUN client (RFC 7443).
pub(super) const STUN_ALPN: [&[u8]; 2] = [b"stun.turn", b"stun.nat-discovery"];
/// A ClientHello larger than this (TLS allows it, nobody sends it) is refused.
const MAX_CLIENT_HELLO: usize = 32 * 1024;
/// How long the backend may take to accept the connection.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a TLS connection on the shared port belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Destination {
    Turn,
    Https,
}

/// Decides from the ALPN list of a ClientHello (`None`: the extension is absent).
pub(super) fn destination<'a>(alpn: Option<impl Iterator<Item = &'a [u8]>>) -> Destination {
    let Some(offered) = alpn else { return Destination::Turn };
    let mut any = false;
    for protocol in offered {
        if STUN_ALPN.contains(&protocol) {
            return Destination::Turn;
        }
        any = true;
    }
    if any { Destination::Https } else { Destination::Turn }
}

/// Reads from `stream` until a whole ClientHello is in; returns every byte read and where
/// the connection belongs. Fails on anything that is not a TLS ClientHello.
pub(super) async fn read_client_hello(stream: &mut TcpStream) -> io::Result<(Vec<u8>, Destination)> {
    let mut acceptor = Acceptor::default();
    let mut read = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a whole ClientHello"));
        }
        read.extend_from_slice(&chunk[..n]);
        let mut fresh = &chunk[..n];
        while !fresh.is_empty() {
            acceptor.read_tls(&mut fresh)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok((read, destination(accepted.client_hello().alpn()))),
            Ok(None) if read.len() <= MAX_CLIENT_HELLO => {}
            Ok(None) => return Err(io::Error::new(io::ErrorKind::InvalidData, "ClientHello too large")),
            Err((error, _)) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        }
    }
}

/// An HTTPS connection handed to the backend: the PROXY header if asked, the bytes already
/// read, then both directions copied until either side closes.
pub(super) async fn pass_through(
    mut client: TcpStream,
    already_read: &[u8],
    backend: &str,
    proxy_protocol: bool,
) -> io::Result<()> {
    let connect = tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, TcpStream::connect(backend)).await;
    let mut upstream = connect.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "backend did not accept"))??;
    let _ = upstream.set_nodelay(true);
    if proxy_protocol {
        let header = proxy_v2_header(client.peer_addr()?, client.local_addr()?);
        upstream.write_all(&header).await?;
    }
    upstream.write_all(already_read).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// A PROXY protocol version 2 header (haproxy's proxy-protocol.txt, §2.2) for a TCP
/// connection from `source` to `destination`. Mixed families are sent as IPv6 (an IPv4
/// address mapped into it).
pub(super) fn proxy_v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
    const VERSION_2_PROXY: u8 = 0x21;
    const TCP_OVER_IPV4: u8 = 0x11;
    const TCP_OVER_IPV6: u8 = 0x21;
    let mut header = SIGNATURE.to_vec();
    header.push(VERSION_2_PROXY);
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(TCP_OVER_IPV4);
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
        }
        _ => {
            let v6 = |address: SocketAddr| match address {
                SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped(),
                SocketAddr::V6(v6) => *v6.ip(),
            };
            header.push(TCP_OVER_IPV6);
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&v6(source).octets());
            header.extend_from_slice(&v6(destination).octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

/// A stream that first yields bytes already read from it, so a TLS handshake can start
/// over from the ClientHello. Writes go straight to the stream.
pub(super) struct Replayed<S> {
    already_read: Vec<u8>,
    position: usize,
    inner: S,
}

impl<S> Replayed<S> {
    pub(super) fn new(already_read: Vec<u8>, inner: S) -> Replayed<S> {
        Replayed { already_read, position: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.position < this.already_read.len() {
            let rest = &this.already_read[this.position..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.position += n;
            if this.position == this.already_read.len() {
                this.already_read = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(alpn: Option<&[&[u8]]>) -> Destination {
        destination(alpn.map(|list| list.iter().copied()))
    }

    #[test]
    fn browsers_go_to_https_and_turn_clients_to_turn() {
        assert_eq!(route(Some(&[b"h2", b"http/1.1"])), Destination::Https);
        assert_eq!(route(Some(&[b"acme-tls/1"])), Destination::Https);
        assert_eq!(route(None), Destination::Turn, "browsers' turns: offers no ALPN");
        assert_eq!(route(Some(&[b"stun.turn"])), Destination::Turn);
        assert_eq!(route(Some(&[b"http/1.1", b"stun.nat-discovery"])), Destination::Turn);
        assert_eq!(route(Some(&[])), Destination::Turn);
    }

    #[test]
    fn proxy_header_carries_both_addresses() {
        let v4 = proxy_v2_header("192.0.2.7:50000".parse().unwrap(), "198.51.100.1:443".parse().unwrap());
        assert_eq!(&v4[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(v4[12..16], [0x21, 0x11, 0, 12]);
        assert_eq!(v4[16..20], [192, 0, 2, 7]);
        assert_eq!(v4[20..24], [198, 51, 100, 1]);
        assert_eq!(v4[24..28], [0xC3, 0x50, 0x01, 0xBB]);
        assert_eq!(v4.len(), 28);
        let v6 = proxy_v2_header("[2001:db8::1]:1".parse().unwrap(), "192.0.2.1:443".parse().unwrap());
        assert_eq!(v6[12..16], [0x21, 0x21, 0, 36]);
        assert_eq!(v6.len(), 16 + 36);
        assert_eq!(v6[32..48], "::ffff:192.0.2.1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    }
}
