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
    std::fs::create_dir_all(root.join(bucket)).unwrap_or_else(|e| panic!("creating the bucket folder: {e}"));
    let filesystem = s3s_fs::FileSystem::new(root).unwrap_or_else(|e| panic!("s3s-fs on {}: {e:?}", root.display()));
    let mut builder = s3s::service::S3ServiceBuilder::new(filesystem);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("binding the S3 server: {e}"));
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
            let (http, service) = (http.clone(), service.clone());
            tokio::spawn(async move {
                let _ = http.serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    address
}
