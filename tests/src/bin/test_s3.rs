//! An S3 server for the browser tests (tests/browser/e2e): s3s-fs over a folder, on
//! 127.0.0.1 (an ephemeral port), with one bucket and one key pair, as production's object
//! storage would answer. Prints `s3: http://ADDRESS` once it listens; serves until killed.
//!
//! `isoplane-test-s3 FOLDER BUCKET KEY SECRET`

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [root, bucket, key, secret] = arguments.as_slice() else {
        eprintln!("usage: isoplane-test-s3 FOLDER BUCKET KEY SECRET");
        std::process::exit(2);
    };
    let stop = CancellationToken::new();
    let address = isoplane_assets::testing::serve_s3(root.as_ref(), bucket, key, secret, stop.clone()).await;
    println!("s3: http://{address}");
    // Until killed.
    std::future::pending::<()>().await;
}
