//! Finds the line and column of a JSONPath (as [`crate::Problem`] reports them) in the
//! text of a JSON document, so tools can say "world.json:42:7" instead of only a path.
//!
//! A small scanner rather than a second parser: it assumes the text is valid JSON (it
//! was parsed before a path was reported) and gives up with `None` on anything odd.

/// 1-based line and column of the value at `path` (`$`, `$.zones[2].area`, …).
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let steps = parse_path(path)?;
    let mut scanner = Scanner { bytes: text.as_bytes(), at: 0 };
    let offset = scanner.find(&steps)?;
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = text.get(line_start..offset).map_or(1, |s| s.chars().count() + 1);
    Some((line, column))
}

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            steps.push(Step::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

struct Scanner<'t> {
    bytes: &'t [u8],
    at: usize,
}

impl Scanner<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// Offset of the value at `steps`, starting from the value under the cursor.
    fn find(&mut self, steps: &[Step]) -> Option<usize> {
        self.skip_space();
        let Some((step, rest)) = steps.split_first() else {
            return Some(self.at);
        };
        match step {
            Step::Key(wanted) => {
                self.eat(b'{')?;
                loop {
                    let key = self.string()?;
                    self.eat(b':')?;
                    if key == *wanted {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.eat(b',')?;
                }
            }
            Step::Index(wanted) => {
                self.eat(b'[')?;
                for _ in 0..*wanted {
                    self.skip_value()?;
                    self.eat(b',')?;
                }
                self.find(rest)
            }
        }
    }

    /// Reads a string literal; escapes are kept raw, which is enough to compare keys.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let start = self.at;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'\\' => self.at += 2,
                b'"' => {
                    let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?.to_owned();
                    self.at += 1;
                    return Some(text);
                }
                _ => self.at += 1,
            }
        }
        None
    }

    fn skip_value(&mut self) -> Option<()> {
        self.skip_space();
        match self.bytes.get(self.at)? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&b) = self.bytes.get(self.at) {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
                None
            }
            _ => {
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"name\": \"x\",\n  \"zones\": [\n    {\"id\": \"a\", \"area\": [{\"x\": 1}]},\n    {\"id\": \"b\\\"q\", \"area\": [{\"x\": 2}, {\"x\": 3}]}\n  ]\n}\n";

    #[test]
    fn finds_nested_values() {
        assert_eq!(locate(TEXT, "$"), Some((1, 1)));
        assert_eq!(locate(TEXT, "$.name"), Some((2, 11)));
        assert_eq!(locate(TEXT, "$.zones[1].area[1]"), Some((5, 39)));
        assert_eq!(locate(TEXT, "$.zones[1].area[1].x"), Some((5, 45)));
    }

    #[test]
    fn missing_paths_give_none() {
        assert_eq!(locate(TEXT, "$.zones[5]"), None);
        assert_eq!(locate(TEXT, "$.nope"), None);
        assert_eq!(locate(TEXT, "zones"), None);
        assert_eq!(locate("[1, 2", "$[3]"), None);
    }
}
