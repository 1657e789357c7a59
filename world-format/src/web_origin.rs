//! The origin of a web page's URL (`scheme://host[:port]`), as browsers compare them.
//!
//! Websites in a world open in the browser only when their origin is on the workspace's
//! allow-list, and signaling checks a page someone shares against the same list: both
//! sides must agree on what a URL's origin is. So this reads only the plain forms a
//! browser reads the same way (ASCII host names, IPv4, bracketed IPv6) and refuses the
//! rest (user names in the authority, backslashes, control characters) instead of
//! guessing, including hosts and ports that browsers would rewrite (IPv4 in hex or short
//! forms, long IPv6 forms, ports with leading zeros).

use crate::limits::MAX_URL_CHARS;

/// The origin of an `http:` or `https:` URL, lower-cased and without its scheme's
/// default port; or why the URL is not one a world may embed.
pub fn web_origin(url: &str) -> Result<String, &'static str> {
    if url.len() > MAX_URL_CHARS {
        return Err("the URL is too long (at most 2048 bytes)");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err("the URL has spaces, control characters or backslashes");
    }
    let (scheme, rest) = url.split_once("://").ok_or("the URL does not start with http:// or https://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err("only http:// and https:// pages can be embedded"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("the URL carries a user name or password");
    }
    let (host, port) = split_host_port(authority)?;
    let host = host.to_ascii_lowercase();
    match port {
        Some(port) if port != default_port => Ok(format!("{scheme}://{host}:{port}")),
        _ => Ok(format!("{scheme}://{host}")),
    }
}

/// Whether `text` is an origin as [`web_origin`] writes them (no path, no default port).
pub fn is_web_origin(text: &str) -> bool {
    web_origin(text).is_ok_and(|origin| origin == text)
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let end = inner.find(']').ok_or("the URL's IPv6 address has no closing `]`")?;
        check_ipv6(&inner[..end])?;
        let after = &inner[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("the URL's host is malformed"),
        };
        (&authority[..end + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host");
    }
    if !host.starts_with('[') {
        check_name_or_ipv4(host)?;
    }
    if let Some(port) = port {
        // As browsers write it: digits, no leading zero, 1 to 65535.
        let number = port.parse::<u16>().ok().filter(|&p| p > 0 && p.to_string() == port);
        if number.is_none() {
            return Err("the URL's port is not a number from 1 to 65535 (without leading zeros)");
        }
    }
    Ok((host, port))
}

/// Browsers rewrite IPv6 addresses to their short form (and IPv4-mapped ones to hex):
/// only the short form, as browsers write it, compares equal on both sides.
fn check_ipv6(address: &str) -> Result<(), &'static str> {
    let parsed: std::net::Ipv6Addr = address.parse().map_err(|_| "the URL's IPv6 address is malformed")?;
    let short = parsed.to_string();
    if short.contains('.') || short != address.to_ascii_lowercase() {
        return Err("write the URL's IPv6 address in its short form, without embedded IPv4");
    }
    Ok(())
}

/// A host name of ASCII letters, digits, `-` and `.`; a host that browsers would read as
/// an IPv4 address (its last label numeric or hex) only in the dotted form they write.
fn check_name_or_ipv4(host: &str) -> Result<(), &'static str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if !host.bytes().all(plain) {
        return Err("the URL's host is not a plain name (write international names in their xn-- form)");
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let hex = last.len() > 1 && last.as_bytes()[0] == b'0' && matches!(last.as_bytes()[1], b'x' | b'X');
    if numeric || hex {
        let written = host.parse::<std::net::Ipv4Addr>().map(|ip| ip.to_string());
        if written.as_deref() != Ok(host) {
            return Err("write the URL's IPv4 address as four decimal numbers (1.2.3.4)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_lower_case_without_default_ports_or_paths() {
        assert_eq!(web_origin("https://Board.Example.com/r/abc?x=1#top"), Ok("https://board.example.com".into()));
        assert_eq!(web_origin("HTTP://127.0.0.1:80/"), Ok("http://127.0.0.1".into()));
        assert_eq!(web_origin("http://127.0.0.1:8080"), Ok("http://127.0.0.1:8080".into()));
        assert_eq!(web_origin("https://[::1]:8443/x"), Ok("https://[::1]:8443".into()));
        assert_eq!(web_origin("https://docs.example.org:443"), Ok("https://docs.example.org".into()));
        assert_eq!(web_origin("https://[2001:DB8::1]/"), Ok("https://[2001:db8::1]".into()));
        assert_eq!(web_origin("http://192.168.0.10:8080/x"), Ok("http://192.168.0.10:8080".into()));
    }

    #[test]
    fn urls_a_browser_could_read_otherwise_are_refused() {
        for url in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://example.com/",
            "https://evil.example@good.example/",
            "https://good.example\\@evil.example/",
            "https:///path",
            "https://exa mple.com/",
            "https://例え.jp/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:12a/",
            "https://[::1/",
            "https://[zz]/",
            "https://[0:0::1]/",
            "https://[::ffff:1.2.3.4]/",
            "https://example.com:0443/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://127.0.0.01/",
            "http://host.123/",
            "//example.com/",
        ] {
            assert!(web_origin(url).is_err(), "{url} was accepted");
        }
        assert!(web_origin(&format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS))).is_err());
    }

    #[test]
    fn only_exact_origins_are_origins() {
        assert!(is_web_origin("https://board.example.com"));
        assert!(is_web_origin("http://127.0.0.1:8080"));
        assert!(!is_web_origin("https://board.example.com/"));
        assert!(!is_web_origin("https://Board.example.com"));
        assert!(!is_web_origin("https://board.example.com:443"));
    }
}
