//! The HTTP rules of asset delivery and upload, as pure functions: media types, byte
//! ranges, entity tags. No I/O, no clock; the server shell applies their answers.
//!
//! Invariants: every function here accepts any input without panicking, and a header it
//! does not understand is ignored the way RFC 9110 allows (a malformed `Range` is served
//! as a full `200`), never guessed at.

use std::ops::Range;

use isoplane_world_format::ContentId;

/// The media types uploads may have unless the configuration says otherwise.
pub const DEFAULT_MEDIA_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/avif",
    "image/svg+xml",
    "audio/mpeg",
    "audio/ogg",
    "font/woff2",
];

/// The essence of a `Content-Type` value: `type/subtype` in lowercase, parameters
/// dropped. None if it is not shaped like a media type.
pub fn media_type_essence(value: &str) -> Option<String> {
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token =
        |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    (token(kind) && token(subtype)).then_some(essence)
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, or one that must be ignored: serve everything with 200.
    Full,
    /// One satisfiable range: serve these bytes with 206.
    Partial(Range<u64>),
    /// A well-formed range that no byte satisfies: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for an object of `size` bytes. One range is served;
/// several ranges, other units and malformed values are ignored (full 200), as RFC 9110
/// permits.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = header else { return RangeRequest::Full };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Full };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Partial(size.saturating_sub(suffix)..size),
            None => RangeRequest::Full,
        },
        // `bytes=N-`: from N to the end.
        (false, true) => match number(first) {
            Some(start) if start < size => RangeRequest::Partial(start..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        // `bytes=N-M`: inclusive, M clamped to the end.
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start > end => RangeRequest::Full,
            (Some(start), Some(_)) if start >= size => RangeRequest::Unsatisfiable,
            (Some(start), Some(end)) => RangeRequest::Partial(start..end.saturating_add(1).min(size)),
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

/// The strong entity tag of an asset: its content ID in quotes.
pub fn etag(id: &ContentId) -> String {
    format!("\"{id}\"")
}

/// Whether an `If-None-Match` value matches this entity tag (weak comparison, as RFC 9110
/// asks for If-None-Match): `*`, or any listed tag equal to ours with or without `W/`.
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Whether a `Range` may be honoured under an `If-Range` value: only when it is our
/// strong tag (dates are not used: an asset has one representation forever, but a date
/// cannot prove that).
pub fn if_range_allows(header: Option<&str>, etag: &str) -> bool {
    header.is_none_or(|value| value.trim() == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_reduced_to_their_essence() {
        assert_eq!(media_type_essence("Image/PNG; charset=x").as_deref(), Some("image/png"));
        assert_eq!(media_type_essence("image/svg+xml").as_deref(), Some("image/svg+xml"));
        assert_eq!(media_type_essence("png"), None);
        assert_eq!(media_type_essence("image/"), None);
        assert_eq!(media_type_essence("text/html\r\nX: y"), None);
    }

    #[test]
    fn single_ranges_are_served_and_the_rest_ignored() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Partial(0..10));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Partial(90..100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial(90..100));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Partial(0..100));
        assert_eq!(parse_range(Some("bytes=50-"), 100), Partial(50..100));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Full);
        assert_eq!(parse_range(Some("bytes=a-3"), 100), Full);
        assert_eq!(parse_range(Some("bytes=+1-3"), 100), Full);
        assert_eq!(parse_range(Some("bytes=-"), 100), Full);
        assert_eq!(parse_range(Some("bytes=0-99999999999999999999999"), 100), Full);
    }

    #[test]
    fn if_none_match_accepts_star_lists_and_weak_tags() {
        let tag = etag(&ContentId::of_bytes(b"x"));
        assert!(if_none_match_matches(&tag, &tag));
        assert!(if_none_match_matches("*", &tag));
        assert!(if_none_match_matches(&format!("\"other\", W/{tag}"), &tag));
        assert!(!if_none_match_matches("\"other\"", &tag));
        assert!(if_range_allows(None, &tag));
        assert!(if_range_allows(Some(&tag), &tag));
        assert!(!if_range_allows(Some("\"other\""), &tag));
    }
}
