//! The asset server's behaviour over real HTTP on 127.0.0.1, one suite run on both
//! storage backends: `sqlite_local::*` (SQLite file + local directory) and
//! `postgres_s3::*` (this machine's PostgreSQL + an in-process S3 server).
//!
//! Each test function below takes the backend; the `both_backends!` macro turns it into
//! one `#[tokio::test]` per backend, so both run the same assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Backend, MAX_UPLOAD, TestEnv, WORKSPACE, admin_token, client, token, upload};
use isoplane_assets::Ban;
use isoplane_auth::Role;
use isoplane_world_format::ContentId;
use tokio::io::AsyncWriteExt;

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::SqliteLocal).await;
                }
            )*
        }
        mod postgres_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::PostgresS3).await;
                }
            )*
        }
    };
}

both_backends!(
    upload_get_and_head,
    same_bytes_twice_is_a_no_op,
    interrupted_upload_leaves_nothing,
    oversized_upload_leaves_nothing,
    media_types_outside_the_list_are_refused,
    ranges_and_not_modified,
    large_assets_stream_from_the_store_with_ranges,
    traversal_and_malformed_ids_are_refused,
    writes_need_an_admin_or_builder_token,
    invalid_worlds_and_missing_assets_are_refused_whole,
    a_world_is_checked_without_being_published,
    concurrent_publishes_on_one_base_one_wins,
    current_version_moves_only_from_the_expected_one,
    metadata_survives_a_restart,
    admin_rights_follow_the_shared_records,
    health_readiness_and_metrics,
);

/// Pseudo-random bytes of a given length (distinct per seed).
fn bytes(seed: u8, length: usize) -> Vec<u8> {
    (0..length).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// What the store holds and how many asset rows exist, for "nothing visible" checks.
async fn stored_state(env: &TestEnv) -> (Vec<String>, u64) {
    let keys = env.store_view().await.list_keys().await.unwrap();
    let rows = env.metadata_view().await.asset_count().await.unwrap();
    (keys, rows)
}

async fn upload_get_and_head(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let content = bytes(1, 70_000);
    let id = ContentId::of_bytes(&content).to_string();

    let (status, answer) = upload(&server, content.clone(), "image/png").await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["id"], id.as_str());
    assert_eq!(answer["size"], 70_000);
    assert_eq!(answer["url"], format!("/assets/{id}"));

    let response = client().get(server.url(&format!("/assets/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(headers["etag"], format!("\"{id}\"").as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("vary").is_none(), "the same answer for everyone");
    assert_eq!(response.bytes().await.unwrap().as_ref(), content.as_slice());
    // Again, now from memory: the same bytes.
    let again = client().get(server.url(&format!("/assets/{id}"))).send().await.unwrap();
    assert_eq!(again.bytes().await.unwrap().as_ref(), content.as_slice());

    let head = client().head(server.url(&format!("/assets/{id}"))).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "70000");
    assert_eq!(head.headers()["etag"], format!("\"{id}\"").as_str());
    assert_eq!(head.bytes().await.unwrap().len(), 0);

    let unknown = ContentId::of_bytes(b"never uploaded");
    let missing = client().get(server.url(&format!("/assets/{unknown}"))).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["cache-control"], "no-store", "a CDN must not remember the 404");
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_asset");

    // Exactly one object, under its ID: no temporary left behind.
    let (keys, rows) = stored_state(&env).await;
    assert_eq!(keys, [format!("assets/{id}")]);
    assert_eq!(rows, 1);
    server.stop().await;
}

async fn same_bytes_twice_is_a_no_op(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let content = bytes(2, 5_000);
    let (first, answer) = upload(&server, content.clone(), "image/webp").await;
    assert_eq!(first, 201);
    let (second, again) = upload(&server, content.clone(), "image/webp; q=1").await;
    assert_eq!(second, 200, "the second upload of the same bytes changes nothing");
    assert_eq!(again["id"], answer["id"]);
    let (keys, rows) = stored_state(&env).await;
    assert_eq!((keys.len(), rows), (1, 1));
    assert_eq!(common::metric(&server, "isoplane_assets_uploads_duplicate_total").await, 1);
    server.stop().await;
}

async fn interrupted_upload_leaves_nothing(backend: Backend) {
    // Large enough that a first 5 MiB part reaches the store before the client vanishes.
    let env = TestEnv::new_with(backend, |config| config.limits.max_upload_bytes = 16 << 20).await;
    let server = env.start().await;
    // Declares 8 MiB, sends 6 MiB, then closes the socket mid-body.
    let mut socket = tokio::net::TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST /v1/assets HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        admin_token(),
        8 << 20
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&bytes(3, 6 << 20)).await.unwrap();
    socket.flush().await.unwrap();
    // Let the server start writing the temporary object before the client vanishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);

    let noticed =
        common::eventually(|| async { common::metric(&server, "isoplane_assets_upload_interrupted_total").await == 1 })
            .await;
    assert!(noticed, "the server saw the upload end early");
    let clean = common::eventually(|| async { stored_state(&env).await == (Vec::new(), 0) }).await;
    assert!(clean, "nothing left behind: {:?}", stored_state(&env).await);
    let no_files = common::eventually(|| async { env.files_on_disk().is_empty() }).await;
    assert!(no_files, "no temporary file left on disk: {:?}", env.files_on_disk());
    // And the partial content's ID is not served.
    let partial = ContentId::of_bytes(&bytes(3, 6 << 20));
    let response = client().get(server.url(&format!("/assets/{partial}"))).send().await.unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}

async fn oversized_upload_leaves_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;

    // A declared length over the limit is refused before any byte is read.
    let request = format!(
        "POST /v1/assets HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        admin_token(),
        MAX_UPLOAD + 1
    );
    let answer = common::raw_exchange(server.address, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"too_large\""), "{answer}");

    // A chunked body (no declared length) is refused the moment it passes the limit.
    let mut socket = tokio::net::TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST /v1/assets HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n",
        admin_token()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = bytes(4, 16 * 1024);
    for _ in 0..(MAX_UPLOAD as usize / chunk.len() * 4) {
        let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
        if socket.write_all(&framed).await.is_err() {
            break;
        }
    }
    drop(socket);
    let refused = common::eventually(|| async {
        common::metric(&server, "isoplane_assets_upload_rejected_too_large_total").await == 2
    })
    .await;
    assert!(refused, "both oversized uploads were refused as too large");
    let clean = common::eventually(|| async { stored_state(&env).await == (Vec::new(), 0) }).await;
    assert!(clean, "nothing left behind: {:?}", stored_state(&env).await);
    let no_files = common::eventually(|| async { env.files_on_disk().is_empty() }).await;
    assert!(no_files, "no temporary file left on disk: {:?}", env.files_on_disk());

    // Exactly the limit is fine.
    let (status, _) = upload(&server, bytes(5, MAX_UPLOAD as usize), "image/png").await;
    assert_eq!(status, 201);
    server.stop().await;
}

async fn media_types_outside_the_list_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    for media_type in ["text/html", "application/javascript", "not a type"] {
        let (status, answer) = upload(&server, b"<script>alert(1)</script>".to_vec(), media_type).await;
        assert_eq!(status, 415, "{media_type}");
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
        assert!(answer["error"]["allowed"].as_array().is_some_and(|list| list.contains(&"image/png".into())));
    }
    assert_eq!(stored_state(&env).await, (Vec::new(), 0));
    server.stop().await;
}

async fn ranges_and_not_modified(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let content = bytes(6, 1000);
    let (status, answer) = upload(&server, content.clone(), "image/png").await;
    assert_eq!(status, 201);
    let url = server.url(&format!("/assets/{}", answer["id"].as_str().unwrap()));
    let etag = format!("\"{}\"", answer["id"].as_str().unwrap());

    // Twice each: the first answer comes from the store, the second from memory.
    for _ in 0..2 {
        let cases: [(&str, std::ops::Range<usize>, &str); 4] = [
            ("bytes=0-99", 0..100, "bytes 0-99/1000"),
            ("bytes=-10", 990..1000, "bytes 990-999/1000"),
            ("bytes=900-", 900..1000, "bytes 900-999/1000"),
            ("bytes=995-2000", 995..1000, "bytes 995-999/1000"),
        ];
        for (range, span, content_range) in cases {
            let response = client().get(&url).header("range", range).send().await.unwrap();
            assert_eq!(response.status(), 206, "{range}");
            assert_eq!(response.headers()["content-range"], content_range);
            assert_eq!(response.headers()["content-length"], span.len().to_string().as_str());
            assert_eq!(response.bytes().await.unwrap().as_ref(), &content[span], "{range}");
        }
        let unsatisfiable = client().get(&url).header("range", "bytes=1000-").send().await.unwrap();
        assert_eq!(unsatisfiable.status(), 416);
        assert_eq!(unsatisfiable.headers()["content-range"], "bytes */1000");
        // Several ranges are answered with the whole asset, as RFC 9110 allows.
        let several = client().get(&url).header("range", "bytes=0-1,5-6").send().await.unwrap();
        assert_eq!(several.status(), 200);
        assert_eq!(several.bytes().await.unwrap().len(), 1000);
    }
    // If-Range with another tag: the whole asset.
    let stale = client().get(&url).header("range", "bytes=0-9").header("if-range", "\"x\"").send().await.unwrap();
    assert_eq!(stale.status(), 200);

    for tag in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let response = client().get(&url).header("if-none-match", &tag).send().await.unwrap();
        assert_eq!(response.status(), 304, "{tag}");
        assert_eq!(response.headers()["etag"], etag.as_str());
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let other = client().get(&url).header("if-none-match", "\"sha256-other\"").send().await.unwrap();
    assert_eq!(other.status(), 200);
    let head = client().head(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(head.status(), 304);
    assert_eq!(common::metric(&server, "isoplane_assets_not_modified_total").await, 5);
    server.stop().await;
}

async fn large_assets_stream_from_the_store_with_ranges(backend: Backend) {
    // Assets over 1 KiB are never kept in memory here: every answer streams from the store.
    let env = TestEnv::new_with(backend, |config| {
        config.cache.max_bytes = 64 * 1024;
        config.cache.max_object_bytes = 1024;
    })
    .await;
    let server = env.start().await;
    let content = bytes(9, 200_000);
    let (status, answer) = upload(&server, content.clone(), "audio/ogg").await;
    assert_eq!(status, 201);
    let url = server.url(answer["url"].as_str().unwrap());
    for _ in 0..2 {
        let full = client().get(&url).send().await.unwrap();
        assert_eq!(full.status(), 200);
        assert_eq!(full.headers()["content-type"], "audio/ogg");
        assert_eq!(full.headers()["content-length"], "200000");
        assert_eq!(full.bytes().await.unwrap().as_ref(), content.as_slice());
        let cases: [(&str, std::ops::Range<usize>); 3] =
            [("bytes=0-0", 0..1), ("bytes=-1000", 199_000..200_000), ("bytes=123456-", 123_456..200_000)];
        for (range, span) in cases {
            let response = client().get(&url).header("range", range).send().await.unwrap();
            assert_eq!(response.status(), 206, "{range}");
            let expected = format!("bytes {}-{}/200000", span.start, span.end - 1);
            assert_eq!(response.headers()["content-range"], expected.as_str());
            assert_eq!(response.bytes().await.unwrap().as_ref(), &content[span], "{range}");
        }
        let head = client().head(&url).send().await.unwrap();
        assert_eq!(head.headers()["content-length"], "200000");
        assert_eq!(client().get(&url).header("range", "bytes=200000-").send().await.unwrap().status(), 416);
    }
    let text = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("isoplane_assets_cache_bytes 0"), "streamed, not cached: {text}");
    server.stop().await;
}

async fn traversal_and_malformed_ids_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // A file beside the store that a traversal would reach.
    std::fs::write(env.dir().join("secret.txt"), "do not serve").unwrap();
    let server = env.start().await;
    let id = ContentId::of_bytes(b"x").to_string();
    let paths = [
        "/assets/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/assets/..%2Fsecret.txt".to_owned(),
        "/assets/sha256-../x".to_owned(),
        "/assets/sha256-..%2F..%2Fsecret.txt".to_owned(),
        "/assets/%2e%2e".to_owned(),
        "/assets/../../etc/passwd".to_owned(),
        format!("/assets/{}", id.to_uppercase()),
        format!("/assets/{id}0"),
        format!("/assets/{}", &id[..60]),
        "/assets/sha256-%00".to_owned(),
        "/assets/".to_owned(),
    ];
    for path in &paths {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let answer = common::raw_exchange(server.address, request.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 404"),
            "{path} must be refused, got: {answer}"
        );
        assert!(!answer.contains("root:") && !answer.contains("do not serve"), "{path} leaked a file");
        assert!(answer.contains("\"error\""), "{path}: a JSON error body: {answer}");
    }
    let malformed = client().get(server.url("/assets/..%2F..%2Fetc%2Fpasswd")).send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_id");
    server.stop().await;
}

async fn writes_need_an_admin_or_builder_token(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let publish_url = server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds/lobby/versions"));
    let publish = serde_json::json!({"base_version": 0, "world": common::demo_world("x")});
    let member = token("bob", WORKSPACE, Role::Member);
    let other_workspace = token("eve", "elsewhere", Role::Admin);
    let forged = {
        let mut parts: Vec<String> = admin_token().split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    let wrong_key = isoplane_auth::TokenKey::new("another-secret-entirely").sign(&serde_json::json!({
        "sub": "mallory", "name": "m", "workspace": WORKSPACE, "role": "admin", "exp": u64::MAX / 2
    }));
    let cases: [(Option<&str>, u16, &str); 5] = [
        (None, 401, "missing_token"),
        (Some(&forged), 401, "invalid_token"),
        (Some(&wrong_key), 401, "invalid_token"),
        (Some(&member), 403, "not_admin"),
        (Some(&other_workspace), 403, "wrong_workspace"),
    ];
    for (bearer, status, code) in cases {
        let mut request =
            client().post(server.url("/v1/assets")).header("content-type", "image/png").body(vec![1u8; 10]);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "upload with {code}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);

        let mut request = client().post(&publish_url).json(&publish);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), status, "publish with {code}");
    }
    // A member listed as an admin of the workspace may write.
    env.metadata_view().await.add_admin(WORKSPACE, "bob", "ada", 1).await.unwrap();
    let allowed = client()
        .post(server.url("/v1/assets"))
        .bearer_auth(&member)
        .header("content-type", "image/png")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 201);
    // A builder (by its token) uploads a world's images and publishes it.
    let builder = token("carl", WORKSPACE, Role::Builder);
    let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worlds/demo/assets");
    let image = std::fs::read(std::fs::read_dir(images).unwrap().next().unwrap().unwrap().path()).unwrap();
    let request = client().post(server.url("/v1/assets")).bearer_auth(&builder).header("content-type", "image/svg+xml");
    assert_eq!(request.body(image).send().await.unwrap().status(), 201);
    let published = client().post(&publish_url).bearer_auth(&builder).json(&publish).send().await.unwrap();
    assert_eq!(published.status(), 201);
    // A banned admin may not.
    let metadata = env.metadata_view().await;
    let ban = Ban {
        workspace: WORKSPACE.into(),
        user_id: "ada".into(),
        reason: "test".into(),
        created_by: "root".into(),
        created_at: 1,
        expires_at: None,
    };
    metadata.ban(&ban).await.unwrap();
    let (status, answer) = upload(&server, vec![2u8; 10], "image/png").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("banned")));
    // Only the permitted uploads are stored: the listed member's, the builder's image
    // and the world file it published.
    assert_eq!(stored_state(&env).await.1, 3);
    server.stop().await;
}

async fn a_world_is_checked_without_being_published(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let url = server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds/lobby/check"));
    let check = |world: serde_json::Value, bearer: String| {
        client().post(&url).bearer_auth(bearer).json(&serde_json::json!({"world": world})).send()
    };
    let verdict = |world: serde_json::Value| async {
        let response = check(world, token("carl", WORKSPACE, Role::Builder)).await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()
    };
    // Its image not uploaded yet: named as missing.
    let demo_id = ContentId::of_bytes(&common::demo_image()).to_string();
    let answer = verdict(common::demo_world("Lobby")).await;
    assert_eq!(answer, serde_json::json!({"errors": [], "missing": [demo_id], "warnings": []}));
    assert_eq!(upload(&server, common::demo_image(), "image/svg+xml").await.0, 201);
    let answer = verdict(common::demo_world("Lobby")).await;
    assert_eq!(answer["errors"], serde_json::json!([]));
    assert_eq!(answer["missing"], serde_json::json!([]));
    // A door-only zone whose door is not there: the fault, where it is.
    let mut broken = common::demo_world("Lobby");
    broken["zones"][0]["entry_via"] = serde_json::json!(["no-such-door"]);
    let answer = verdict(broken).await;
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(errors[0]["path"], "$.zones[0].entry_via[0]");
    assert!(errors[0]["message"].as_str().unwrap().contains("no-such-door"), "{answer}");
    // Members may not (it is part of building); nothing was published either way.
    let member = check(common::demo_world("Lobby"), token("bob", WORKSPACE, Role::Member)).await.unwrap();
    assert_eq!(member.status(), 403);
    let current = client()
        .get(server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds/lobby")))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 404);
    server.stop().await;
}

async fn invalid_worlds_and_missing_assets_are_refused_whole(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let url = server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds/lobby/versions"));
    let publish = |world: serde_json::Value| {
        client()
            .post(&url)
            .bearer_auth(admin_token())
            .json(&serde_json::json!({"base_version": 0, "world": world}))
            .send()
    };

    // Two tilesets whose images were never uploaded: both named.
    let mut world = common::demo_world("Lobby");
    let extra_image = ContentId::of_bytes(b"a second tileset").to_string();
    let mut second = world["tilesets"][0].clone();
    second["name"] = "more".into();
    second["image"] = extra_image.clone().into();
    second["first_gid"] = 100.into();
    world["tilesets"].as_array_mut().unwrap().push(second);
    let response = publish(world.clone()).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_assets");
    let demo_id = ContentId::of_bytes(&common::demo_image()).to_string();
    assert_eq!(body["error"]["missing"], serde_json::json!([demo_id, extra_image]));

    // A world with several errors: every one listed with its path.
    let mut broken = common::demo_world("Broken");
    broken["grid"]["width"] = 0.into();
    broken["spawns"] = serde_json::json!([]);
    broken["movement"]["max_speed"] = "fast".into();
    let response = publish(broken).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_world");
    let errors = body["error"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{body}");
    assert!(errors.iter().all(|e| e["path"].as_str().is_some_and(|p| p.starts_with('$'))), "{body}");
    assert!(errors.iter().any(|e| e["path"].as_str().is_some_and(|p| p.contains("max_speed"))), "{body}");

    // Not JSON at all.
    let garbage = client().post(&url).bearer_auth(admin_token()).body("{nope").send().await.unwrap();
    assert_eq!(garbage.status(), 400);

    // Nothing was recorded, nothing is loadable.
    let versions = client().get(&url).bearer_auth(admin_token()).send().await.unwrap();
    assert_eq!(versions.status(), 404);
    assert_eq!(stored_state(&env).await, (Vec::new(), 0));

    // Once the images are uploaded, the same world is accepted.
    assert_eq!(upload(&server, common::demo_image(), "image/svg+xml").await.0, 201);
    world["tilesets"].as_array_mut().unwrap().pop();
    let response = publish(world).await.unwrap();
    assert_eq!(response.status(), 201);
    server.stop().await;
}

async fn concurrent_publishes_on_one_base_one_wins(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    assert_eq!(upload(&server, common::demo_image(), "image/svg+xml").await.0, 201);
    let url = server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds/lobby/versions"));
    let publish = |base: i64, name: String| {
        let request = client()
            .post(&url)
            .bearer_auth(admin_token())
            .json(&serde_json::json!({"base_version": base, "world": common::demo_world(&name)}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    // Round 0 races two first versions; each later round races two edits of the current one.
    for round in 0..5i64 {
        let ((a, body_a), (b, body_b)) =
            tokio::join!(publish(round, format!("A{round}")), publish(round, format!("B{round}")));
        let mut statuses = [a, b];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {body_a} {body_b}");
        let (winner, loser) = if a == 201 { (body_a, body_b) } else { (body_b, body_a) };
        assert_eq!(winner["version"], round + 1);
        assert_eq!(winner["parent_version"], round);
        assert_eq!(loser["error"]["code"], "version_conflict");
        assert_eq!(loser["error"]["current_version"], round + 1);
    }
    // A publish on a stale base never overwrites.
    let (status, body) = publish(2, "late".into()).await;
    assert_eq!((status, body["error"]["current_version"].as_i64()), (409, Some(5)));
    let versions: serde_json::Value =
        client().get(&url).bearer_auth(admin_token()).send().await.unwrap().json().await.unwrap();
    assert_eq!(versions["current_version"], 5);
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    for (index, version) in list.iter().enumerate() {
        assert_eq!(version["version"], index as i64 + 1);
        assert_eq!(version["parent_version"], index as i64);
    }
    server.stop().await;
}

async fn current_version_moves_only_from_the_expected_one(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    assert_eq!(upload(&server, common::demo_image(), "image/svg+xml").await.0, 201);
    let base = format!("/v1/workspaces/{WORKSPACE}/worlds/lobby");
    let member = token("bob", WORKSPACE, Role::Member);
    for (version, name) in [(0, "First"), (1, "Second")] {
        let response = client()
            .post(server.url(&format!("{base}/versions")))
            .bearer_auth(admin_token())
            .json(&serde_json::json!({"base_version": version, "world": common::demo_world(name)}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let load = || client().get(server.url(&base)).bearer_auth(&member).send();
    let current = load().await.unwrap();
    assert_eq!(current.headers()["x-isoplane-world-version"], "2");
    let etag = current.headers()["etag"].to_str().unwrap().to_owned();
    let world: serde_json::Value = current.json().await.unwrap();
    assert_eq!(world["name"], "Second");
    let unchanged =
        client().get(server.url(&base)).bearer_auth(&member).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), 304);

    let set = |expected: i64, version: i64| {
        client()
            .put(server.url(&format!("{base}/current")))
            .bearer_auth(admin_token())
            .json(&serde_json::json!({"expected_version": expected, "version": version, "reason": "rollback"}))
            .send()
    };
    assert_eq!(set(2, 1).await.unwrap().status(), 200, "roll back to version 1");
    let stale = set(2, 1).await.unwrap();
    assert_eq!(stale.status(), 409, "expected 2, but the pointer is at 1");
    let body: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["current_version"], 1);
    assert_eq!(set(1, 7).await.unwrap().status(), 404, "no version 7");
    let world: serde_json::Value = load().await.unwrap().json().await.unwrap();
    assert_eq!(world["name"], "First");
    // The library call other services use reads the same version.
    let (metadata, store) = (env.metadata_view().await, env.store_view().await);
    let (version, file) =
        isoplane_assets::load_current_world(&metadata, &store, WORKSPACE, "lobby").await.unwrap().unwrap();
    assert_eq!(version.version, 1);
    let loaded: serde_json::Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(loaded, world);
    assert!(isoplane_assets::load_current_world(&metadata, &store, WORKSPACE, "nowhere").await.unwrap().is_none());
    // The file served is exactly the stored asset, also under /assets.
    let versions: serde_json::Value = client()
        .get(server.url(&format!("{base}/versions")))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_id = versions["versions"][0]["content_id"].as_str().unwrap().to_owned();
    let file = client().get(server.url(&format!("/assets/{first_id}"))).send().await.unwrap().bytes().await.unwrap();
    assert!(ContentId::of_bytes(&file).to_string() == first_id);
    // Members read but do not write.
    let refused =
        client().put(server.url(&format!("{base}/current"))).bearer_auth(&member).body("{}").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // Both moves are in the audit log.
    let log = env.metadata_view().await.audit_log(WORKSPACE, None, 10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["world.set_current", "world.publish", "world.publish"]);
    assert_eq!(log[0].reason, "rollback");
    assert_eq!(log[0].target, "world:lobby@1");
    server.stop().await;
}

async fn metadata_survives_a_restart(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let content = bytes(7, 2_000);
    let (status, answer) = upload(&server, content.clone(), "image/gif").await;
    assert_eq!(status, 201);
    assert_eq!(upload(&server, common::demo_image(), "image/svg+xml").await.0, 201);
    let base = format!("/v1/workspaces/{WORKSPACE}/worlds/lobby");
    let published = client()
        .post(server.url(&format!("{base}/versions")))
        .bearer_auth(admin_token())
        .json(&serde_json::json!({"base_version": 0, "world": common::demo_world("Kept")}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    server.stop().await;

    let restarted = env.start().await;
    let asset = client().get(restarted.url(answer["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["content-type"], "image/gif");
    assert_eq!(asset.bytes().await.unwrap().as_ref(), content.as_slice());
    let world = client().get(restarted.url(&base)).bearer_auth(admin_token()).send().await.unwrap();
    assert_eq!(world.headers()["x-isoplane-world-version"], "1");
    let world: serde_json::Value = world.json().await.unwrap();
    assert_eq!(world["name"], "Kept");
    // The next publish continues from the stored pointer.
    let stale = client()
        .post(restarted.url(&format!("{base}/versions")))
        .bearer_auth(admin_token())
        .json(&serde_json::json!({"base_version": 0, "world": common::demo_world("Again")}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    restarted.stop().await;
}

/// Write access follows the metadata crate's rule, the one signaling applies too: an
/// admin token's grant is recorded on first use, and a demotion inside Isoplane wins over
/// later admin tokens until a promotion. (Bans, mutes and the audit log are tested on
/// `Metadata` itself, in metadata/tests.)
async fn admin_rights_follow_the_shared_records(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let metadata = env.metadata_view().await;
    assert!(metadata.workspace_exists(WORKSPACE).await.unwrap(), "the served workspace is created at start");
    assert!(metadata.admins(WORKSPACE).await.unwrap().is_empty());
    let write = |bearer: String, seed: u8| {
        client()
            .post(server.url("/v1/assets"))
            .bearer_auth(bearer)
            .header("content-type", "image/png")
            .body(bytes(seed, 100))
            .send()
    };

    // Ada's admin token is taken at its word and recorded.
    assert_eq!(write(admin_token(), 1).await.unwrap().status(), 201);
    assert_eq!(metadata.admins(WORKSPACE).await.unwrap(), ["ada"]);
    // Reading needs no admin rights and records nothing.
    let reader = token("cy", WORKSPACE, Role::Admin);
    let worlds = server.url(&format!("/v1/workspaces/{WORKSPACE}/worlds"));
    assert_eq!(client().get(&worlds).bearer_auth(&reader).send().await.unwrap().status(), 200);
    assert_eq!(metadata.admins(WORKSPACE).await.unwrap(), ["ada"]);

    // Bob, promoted inside Isoplane, writes with a member token.
    let bob = token("bob", WORKSPACE, Role::Member);
    assert_eq!(write(bob.clone(), 2).await.unwrap().status(), 403);
    assert!(metadata.promote(WORKSPACE, "bob", "ada", 10).await.unwrap());
    assert_eq!(write(bob.clone(), 3).await.unwrap().status(), 201);

    // Demoted by Bob, Ada's admin token no longer lets her write.
    assert!(metadata.demote(WORKSPACE, "ada", "bob", 20).await.unwrap());
    let refused = write(admin_token(), 4).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_admin");
    assert_eq!(metadata.admins(WORKSPACE).await.unwrap(), ["bob"]);

    // Promoted again, she may.
    assert!(metadata.promote(WORKSPACE, "ada", "bob", 30).await.unwrap());
    assert_eq!(write(admin_token(), 5).await.unwrap().status(), 201);
    assert_eq!(stored_state(&env).await.1, 3);
    server.stop().await;
}

async fn health_readiness_and_metrics(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    assert_eq!(client().get(server.url("/healthz")).send().await.unwrap().status(), 200);
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let content = bytes(8, 3_000);
    let (_, answer) = upload(&server, content, "image/png").await;
    let url = server.url(answer["url"].as_str().unwrap());
    for _ in 0..3 {
        client().get(&url).send().await.unwrap().bytes().await.unwrap();
    }
    let text = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("isoplane_assets_http_requests_total{route=\"/assets/{id}\",status=\"2xx\"} 3"), "{text}");
    assert!(text.contains("isoplane_assets_http_requests_total{route=\"/v1/assets\",status=\"2xx\"} 1"), "{text}");
    assert!(text.contains("isoplane_assets_bytes_served_total 9000"), "{text}");
    assert!(text.contains("isoplane_assets_uploads_created_total 1"), "{text}");
    assert!(text.contains("isoplane_assets_cache_hits_total 2"), "{text}");
    let unknown = client().get(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    server.stop().await;
}
