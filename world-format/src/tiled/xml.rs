//! The small XML reader behind the `.tsx` and `.tmx` readers: text to a tree of
//! elements with their attributes and text.
//!
//! This is tag scanning, not a general XML parser: it handles comments, processing
//! instructions, doctype declarations, CDATA, both quote styles and the standard
//! entities, which is all Tiled writes. Nesting is limited to [`MAX_DEPTH`] so a
//! hostile file cannot make the readers that walk the tree recurse without end.

/// How deeply elements may nest; Tiled's deepest structures (groups of groups) are far
/// shallower in any real map.
pub(super) const MAX_DEPTH: usize = 64;

/// One element: its name, attributes (unescaped), child elements and the text directly
/// inside it (unescaped, CDATA included), in document order.
#[derive(Debug, Default)]
pub(super) struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'e>(&'e self, name: &'e str) -> impl Iterator<Item = &'e Element> + 'e {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// One start or end tag.
struct Tag<'t> {
    name: &'t str,
    attributes: Vec<(String, String)>,
    closing: bool,
    self_closing: bool,
}

/// The document's root element, or why the text is not well-formed enough to read.
pub(super) fn parse(text: &str) -> Result<Element, String> {
    // The elements still open, outermost first.
    let mut open: Vec<Element> = Vec::new();
    let mut root = None;
    let mut rest = text;
    loop {
        let next = rest.find('<').unwrap_or(rest.len());
        if let Some(current) = open.last_mut() {
            current.text.push_str(&unescape(&rest[..next]));
        }
        rest = &rest[next..];
        if rest.is_empty() {
            break;
        }
        if let Some(inner) = rest.strip_prefix("<![CDATA[") {
            let end = inner.find("]]>").ok_or("an unterminated <![CDATA[")?;
            if let Some(current) = open.last_mut() {
                current.text.push_str(&inner[..end]);
            }
            rest = &inner[end + 3..];
            continue;
        }
        let (tag, after) = next_tag(rest)?;
        rest = after;
        let Some(tag) = tag else { continue };
        if tag.closing {
            let element = open.pop().ok_or_else(|| format!("</{}> closes nothing", tag.name))?;
            if element.name != tag.name {
                return Err(format!("</{}> closes <{}>", tag.name, element.name));
            }
            match open.last_mut() {
                Some(parent) => parent.children.push(element),
                None => root = Some(element),
            }
            continue;
        }
        if open.is_empty() && root.is_some() {
            return Err("more than one root element".into());
        }
        let element = Element { name: tag.name.to_owned(), attributes: tag.attributes, ..Element::default() };
        if tag.self_closing {
            match open.last_mut() {
                Some(parent) => parent.children.push(element),
                None => root = Some(element),
            }
        } else {
            if open.len() >= MAX_DEPTH {
                return Err(format!("elements nest deeper than {MAX_DEPTH} levels"));
            }
            open.push(element);
        }
    }
    match (root, open.last()) {
        (Some(root), _) => Ok(root),
        (None, Some(unclosed)) => Err(format!("<{}> is never closed", unclosed.name)),
        (None, None) => Err("no element found".into()),
    }
}

/// Reads the tag at the start of `text` (which starts with `<`). Comments and
/// declarations give `None`.
fn next_tag(text: &str) -> Result<(Option<Tag<'_>>, &str), String> {
    for (opening, closing) in [("<!--", "-->"), ("<?", "?>"), ("<!", ">")] {
        if text.starts_with(opening) {
            let end = text.find(closing).ok_or_else(|| format!("unterminated {opening}"))?;
            return Ok((None, &text[end + closing.len()..]));
        }
    }
    let end = tag_end(text).ok_or("an unterminated tag")?;
    let inner = &text[1..end];
    let after = &text[end + 1..];
    if let Some(name) = inner.strip_prefix('/') {
        return Ok((
            Some(Tag { name: name.trim(), attributes: Vec::new(), closing: true, self_closing: false }),
            after,
        ));
    }
    let self_closing = inner.ends_with('/');
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    let name_end = inner.find(|c: char| c.is_ascii_whitespace()).unwrap_or(inner.len());
    let name = &inner[..name_end];
    if name.is_empty() {
        return Err("a tag without a name".into());
    }
    let tag = Tag { name, attributes: attributes(&inner[name_end..])?, closing: false, self_closing };
    Ok((Some(tag), after))
}

/// The index of the `>` that ends the tag, skipping any `>` inside quoted values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attributes(mut text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return Ok(out);
        }
        let eq = text.find('=').ok_or_else(|| format!("attribute without a value near `{}`", head(text)))?;
        let name = text[..eq].trim();
        let value_text = text[eq + 1..].trim_start();
        let quote = value_text
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("unquoted attribute `{name}`"))?;
        let close = value_text[1..].find(quote).ok_or_else(|| format!("unterminated attribute `{name}`"))?;
        out.push((name.to_owned(), unescape(&value_text[1..=close])));
        text = &value_text[close + 2..];
    }
}

fn head(text: &str) -> String {
    text.chars().take(20).collect()
}

/// Replaces XML's entities and character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16).ok())
                .unwrap_or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_attributes_and_text() {
        let root = parse(
            "<?xml version=\"1.0\"?>\n<!-- a > in a comment -->\n<a x='1 &amp; 2' y=\"&#233;\"><b/>one &lt;<![CDATA[<raw>]]><c z=\"a>b\">in c</c></a>",
        )
        .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attribute("x"), Some("1 & 2"));
        assert_eq!(root.attribute("y"), Some("é"));
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.text, "one <<raw>");
        let c = root.child("c").unwrap();
        assert_eq!(c.attribute("z"), Some("a>b"));
        assert_eq!(c.text, "in c");
        assert_eq!(root.children_named("b").count(), 1);
    }

    #[test]
    fn refuses_broken_documents() {
        for broken in ["no xml", "<a>", "<a></b>", "</a>", "<a x=1/>", "<a x=\"1/>", "<!-- open", "<a/><b/>", "< />"] {
            assert!(parse(broken).is_err(), "{broken}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().contains("deeper"));
    }
}
