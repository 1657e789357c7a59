//! For tests of the crates that run an asset server (feature `testing`): a real S3 server
//! in-process (s3s-fs over a folder), as production's object storage would answer.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves S3 on 127.0.0.1 (an ephemeral port) from `root`, with `bucket` created and one
/// key pair, until `stop` is cancelled. Panics if it cannot start (a test cannot go on).
pub async fn serve_s3(root: &Path, bucket: &str, key: &str, secret: &str, stop: CancellationToken) -> SocketAddr {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    serve_s3_on(any_port, root, bucket, key, secret, stop).await
}

/// [`serve_s3`] on `address`. Cancelling `stop` also closes the open connections, as a
/// stopped server would: a test can stop S3 and start it again on the same address with
/// what it stored (retrying the bind for a few seconds while the old socket goes).
pub async fn serve_s3_on(
    address: SocketAddr,
    root: &Path,
    bucket: &str,
    key: &str,
    secret: &str,
    stop: CancellationToken,
) -> SocketAddr {
    std::fs::create_dir_all(root.join(bucket)).unwrap_or_else(|e| panic!("creating the bucket folder: {e}"));
    let filesystem = s3s_fs::FileSystem::new(root).unwrap_or_else(|e| panic!("s3s-fs on {}: {e:?}", root.display()));
    let mut builder = s3s::service::S3ServiceBuilder::new(filesystem);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
    let service = builder.build();
    let mut attempts = 0;
    let listener = loop {
        match TcpListener::bind(address).await {
            Ok(listener) => break listener,
            Err(error) if attempts < 50 && address.port() != 0 => {
                attempts += 1;
                tracing::debug!(%error, "S3 address still taken; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("binding the S3 server on {address}: {error}"),
        }
    };
    let address = listener.local_addr().unwrap_or_else(|e| panic!("the S3 server's address: {e}"));
    tokio::spawn(async move {
        let http = Arc::new(hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()));
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(_) => continue,
                },
                () = stop.cancelled() => break,
            };
            let (http, service, stop) = (http.clone(), service.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = http.serve_connection(TokioIo::new(socket), service) => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    });
    address
}
