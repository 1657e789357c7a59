//! A JSON walker that keeps reading after an error.
//!
//! serde's derive stops at the first bad field; a world author wants every mistake at
//! once. Each reader returns `None` for a value it could not read and records why, with
//! the value's JSONPath, in [`Problems`]; callers read every field before giving up.

use serde_json::{Map, Value};

use crate::problem::Problems;

/// A value that can be read from JSON, recording problems instead of stopping.
pub(crate) trait FromJson: Sized {
    /// What the value should be, for error messages ("a whole number", "a string", …).
    const EXPECTED: &'static str;

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Self>;
}

/// Short description of a JSON value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("{n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("the string \"{head}…\"")
        }
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn wrong_type<T: FromJson>(value: &Value, path: &str, problems: &mut Problems) -> Option<T> {
    problems.error(path, format!("expected {}, found {}", T::EXPECTED, describe(value)));
    None
}

impl FromJson for u32 {
    const EXPECTED: &'static str = "a whole number from 0 to 4294967295";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<u32> {
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => wrong_type(value, path, problems),
        }
    }
}

impl FromJson for f32 {
    const EXPECTED: &'static str = "a number";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<f32> {
        #[allow(clippy::cast_possible_truncation)] // world numbers are small; f32 is plenty
        match value.as_f64().map(|n| n as f32).filter(|n| n.is_finite()) {
            Some(n) => Some(n),
            None => wrong_type(value, path, problems),
        }
    }
}

impl FromJson for bool {
    const EXPECTED: &'static str = "true or false";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<bool> {
        match value.as_bool() {
            Some(b) => Some(b),
            None => wrong_type(value, path, problems),
        }
    }
}

impl FromJson for String {
    const EXPECTED: &'static str = "a string";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<String> {
        match value.as_str() {
            Some(s) => Some(s.to_owned()),
            None => wrong_type(value, path, problems),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    const EXPECTED: &'static str = "an array";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Vec<T>> {
        let Some(items) = value.as_array() else {
            return wrong_type(value, path, problems);
        };
        let mut out = Vec::with_capacity(items.len());
        let mut all_read = true;
        for (index, item) in items.iter().enumerate() {
            match T::from_json(item, &format!("{path}[{index}]"), problems) {
                Some(v) => out.push(v),
                None => all_read = false,
            }
        }
        all_read.then_some(out)
    }
}

impl FromJson for [u32; 2] {
    const EXPECTED: &'static str = "a pair of whole numbers [x, y]";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<[u32; 2]> {
        match value.as_array().map(Vec::as_slice) {
            Some([x, y]) => {
                let x = u32::from_json(x, &format!("{path}[0]"), problems);
                let y = u32::from_json(y, &format!("{path}[1]"), problems);
                Some([x?, y?])
            }
            _ => wrong_type(value, path, problems),
        }
    }
}

/// The readable items of a list, with the position each had in the file.
pub(crate) struct PartialList<T> {
    pub items: Vec<T>,
    pub positions: Vec<usize>,
    pub complete: bool,
}

/// Reads the fields of one JSON object and notices the ones nobody asked for.
pub(crate) struct ObjectReader<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading `value`, which must be an object.
    pub fn open(value: &'a Value, path: &str, problems: &mut Problems) -> Option<ObjectReader<'a>> {
        match value.as_object() {
            Some(map) => Some(ObjectReader { map, path: path.to_owned(), known: Vec::new() }),
            None => {
                problems.error(path, format!("expected an object, found {}", describe(value)));
                None
            }
        }
    }

    pub fn field_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The raw value of a field, if present.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key)
    }

    /// A field that must be present.
    pub fn required<T: FromJson>(&mut self, key: &'static str, problems: &mut Problems) -> Option<T> {
        match self.raw(key) {
            Some(value) => T::from_json(value, &self.field_path(key), problems),
            None => {
                problems.error(&self.path, format!("missing field `{key}` ({})", T::EXPECTED));
                None
            }
        }
    }

    /// A field that may be left out; `default` stands in for it then. `None` only if the
    /// field is present but unreadable.
    pub fn optional<T: FromJson>(&mut self, key: &'static str, default: T, problems: &mut Problems) -> Option<T> {
        match self.raw(key) {
            Some(Value::Null) | None => Some(default),
            Some(value) => T::from_json(value, &self.field_path(key), problems),
        }
    }

    /// Like [`ObjectReader::optional`] but with no default.
    pub fn maybe<T: FromJson>(&mut self, key: &'static str, problems: &mut Problems) -> Option<Option<T>> {
        match self.raw(key) {
            Some(Value::Null) | None => Some(None),
            Some(value) => T::from_json(value, &self.field_path(key), problems).map(Some),
        }
    }

    /// A list whose readable items are kept when others are not, so the rules between
    /// fields can still be checked on them.
    pub fn list<T: FromJson>(&mut self, key: &'static str, required: bool, problems: &mut Problems) -> PartialList<T> {
        let path = self.field_path(key);
        let mut list = PartialList { items: Vec::new(), positions: Vec::new(), complete: true };
        match self.raw(key) {
            None | Some(Value::Null) if !required => {}
            None | Some(Value::Null) => {
                problems.error(&self.path, format!("missing field `{key}` (an array)"));
                list.complete = false;
            }
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    match T::from_json(item, &format!("{path}[{index}]"), problems) {
                        Some(value) => {
                            list.items.push(value);
                            list.positions.push(index);
                        }
                        None => list.complete = false,
                    }
                }
            }
            Some(other) => {
                problems.error(path, format!("expected an array, found {}", describe(other)));
                list.complete = false;
            }
        }
        list
    }

    /// Reports every field that was not read: a typo must not pass silently.
    pub fn finish(self, problems: &mut Problems) {
        for key in self.map.keys() {
            if !self.known.contains(&key.as_str()) {
                let mut expected = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                problems.error(
                    self.field_path(key),
                    format!("unknown field `{key}`; the fields here are: {}", expected.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let value = json!({"a": -1, "b": "x", "c": [1, "two", 3], "typo": true});
        let mut problems = Problems::default();
        let mut reader = ObjectReader::open(&value, "$", &mut problems).unwrap();
        assert_eq!(reader.required::<u32>("a", &mut problems), None);
        assert_eq!(reader.required::<u32>("b", &mut problems), None);
        assert_eq!(reader.required::<Vec<u32>>("c", &mut problems), None);
        assert_eq!(reader.required::<u32>("d", &mut problems), None);
        assert_eq!(reader.optional::<u32>("e", 7, &mut problems), Some(7));
        reader.finish(&mut problems);
        let paths: Vec<&str> = problems.errors.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["$.a", "$.b", "$.c[1]", "$", "$.typo"]);
        assert!(problems.errors[3].message.contains("missing field `d`"));
        assert!(problems.errors[4].message.contains("unknown field `typo`"));
    }
}
