//! The browser client (`web/`) and the demo world's images, built into the binary so
//! `cargo run` needs no JavaScript build step and no files next to the executable.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every file of the web client: URL path under `/web/`, content type, bytes.
pub const WEB_FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../../web/index.html")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../../web/style.css")),
    ("js/admin.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/admin.js")),
    ("js/announce.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/announce.js")),
    ("js/app.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/app.js")),
    ("js/backoff.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/backoff.js")),
    ("js/build.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/build.js")),
    ("js/build-edits.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/build-edits.js")),
    ("js/chat.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/chat.js")),
    ("js/connectivity.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/connectivity.js")),
    ("js/debug.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/debug.js")),
    ("js/dom.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/dom.js")),
    ("js/follow.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/follow.js")),
    ("js/gestures.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/gestures.js")),
    ("js/hud.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/hud.js")),
    ("js/knock.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/knock.js")),
    ("js/layout.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/layout.js")),
    ("js/media.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/media.js")),
    ("js/net.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/net.js")),
    ("js/people.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/people.js")),
    ("js/prediction.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/prediction.js")),
    ("js/protocol.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/protocol.js")),
    ("js/remote.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/remote.js")),
    ("js/render.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/render.js")),
    ("js/sfu.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/sfu.js")),
    ("js/e2ee.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/e2ee.js")),
    ("js/spatial.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/spatial.js")),
    ("js/status.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/status.js")),
    ("js/walk.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/walk.js")),
    ("js/websites.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/websites.js")),
    ("js/world.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/js/world.js")),
];

/// The demo world's images, by content ID.
pub const DEMO_ASSETS: &[(&str, &str, &[u8])] = &[(
    "sha256-ad1738962a05c7ccad2a02b5dc71a95c2fc4cbdbc4a117490ad4343330f546c3",
    "image/svg+xml",
    include_bytes!(
        "../../../worlds/demo/assets/sha256-ad1738962a05c7ccad2a02b5dc71a95c2fc4cbdbc4a117490ad4343330f546c3.svg"
    ),
)];

fn file(content_type: &'static str, bytes: &'static [u8], cache: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    (headers, bytes).into_response()
}

pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The client page at `/`; see [`web_file`].
pub async fn index(frame_policy: HeaderValue) -> Response {
    web_file(Path("index.html".to_owned()), frame_policy).await
}

/// `frame-src` of the allowed origins (`'none'` without any): the browser itself refuses
/// a frame of any other origin, whatever the client's script does. Only framing is
/// restricted; the client's own scripts, styles and connections are untouched.
pub fn frame_policy(embed_origins: &[String]) -> HeaderValue {
    let sources = if embed_origins.is_empty() { "'none'".to_owned() } else { embed_origins.join(" ") };
    // Configured origins are checked to be plain ASCII origins when the server starts.
    HeaderValue::from_str(&format!("frame-src {sources}")).unwrap_or(HeaderValue::from_static("frame-src 'none'"))
}

/// A file of the client, with a `Content-Security-Policy` that lets the page frame pages
/// of the workspace's embed origins and nothing else (see [`frame_policy`]); on every
/// file, so the page is covered whichever URL opened it (`/` or `/web/index.html`).
pub async fn web_file(Path(path): Path<String>, frame_policy: HeaderValue) -> Response {
    match WEB_FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => {
            // The client changes with each release: revalidate rather than cache for long.
            let mut response = file(content_type, bytes, "no-cache");
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, frame_policy);
            response
        }
        None => not_found(),
    }
}

/// One of the demo world's images, if `id` names one.
pub fn demo_image(id: &str) -> Option<Response> {
    let (_, content_type, bytes) = DEMO_ASSETS.iter().find(|(asset, _, _)| *asset == id)?;
    // Content-addressed: the bytes behind an ID never change.
    Some(file(content_type, bytes, "public, max-age=31536000, immutable"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use isoplane_world_format::ContentId;

    use super::*;

    fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else if !name.ends_with(".json") {
                out.insert(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_web_client_is_served() {
        let mut on_disk = BTreeSet::new();
        files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"), "", &mut on_disk);
        let served: BTreeSet<String> = WEB_FILES.iter().map(|(name, _, _)| (*name).to_owned()).collect();
        assert_eq!(served, on_disk, "list every file of web/ in WEB_FILES");
    }

    #[test]
    fn demo_assets_are_named_by_their_content() {
        let world = isoplane_world_format::World::from_json(isoplane_world_format::DEMO_WORLD).unwrap();
        for tileset in &world.file().tilesets {
            let (_, _, bytes) = DEMO_ASSETS.iter().find(|(id, _, _)| *id == tileset.image.to_string()).unwrap();
            assert_eq!(ContentId::of_bytes(bytes), tileset.image);
        }
    }
}
