//! A JSON walker that keeps reading after an error, and [`record!`], which declares a
//! world-file record and its reading from one list of fields.
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
    /// Whether `null` in a field that may be left out means "left out". Names refuse it.
    const NULL_IS_ABSENT: bool = true;

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Self>;
}

/// A value read from the keys of the object that holds it rather than from one key of
/// its own (a zone's `type` and the options that go with it).
pub(crate) trait FromJsonFields: Sized {
    fn from_fields(reader: &mut ObjectReader<'_>, problems: &mut Problems) -> Option<Self>;
}

/// A unit enum written as one of a fixed set of names (`"isometric"`, `"door"`, …).
pub(crate) trait Named: Copy + 'static {
    /// What the name names, for "unknown depth \"x\"; expected one of: …".
    const NOUN: &'static str;
    /// Every value, in the order error messages list their names.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;
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

pub(crate) fn wrong_type<T: FromJson>(value: &Value, path: &str, problems: &mut Problems) -> Option<T> {
    problems.error(path, format!("expected {}, found {}", T::EXPECTED, describe(value)));
    None
}

/// [`FromJson`] for values read in one step, where anything unreadable is "expected
/// EXPECTED, found …": `type => "expected", |value| Option<type>;`.
macro_rules! scalar_from_json {
    ($($(#[$attr:meta])* $ty:ty => $expected:literal, $read:expr;)*) => {$(
        $(#[$attr])*
        impl $crate::json_reader::FromJson for $ty {
            const EXPECTED: &'static str = $expected;

            fn from_json(
                value: &::serde_json::Value,
                path: &str,
                problems: &mut $crate::problem::Problems,
            ) -> Option<$ty> {
                let read: fn(&::serde_json::Value) -> Option<$ty> = $read;
                read(value).or_else(|| $crate::json_reader::wrong_type(value, path, problems))
            }
        }
    )*};
}
pub(crate) use scalar_from_json;

scalar_from_json! {
    u32 => "a whole number from 0 to 4294967295", |v| v.as_u64().and_then(|n| u32::try_from(n).ok());
    #[allow(clippy::cast_possible_truncation)] // world numbers are small; f32 is plenty
    f32 => "a number", |v| v.as_f64().map(|n| n as f32).filter(|n| n.is_finite());
    bool => "true or false", Value::as_bool;
    String => "a string", |v| v.as_str().map(str::to_owned);
}

impl<T: Named> FromJson for T {
    const EXPECTED: &'static str = "a string";
    const NULL_IS_ABSENT: bool = false;

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<T> {
        let text = String::from_json(value, path, problems)?;
        let found = T::ALL.iter().copied().find(|v| v.name() == text);
        if found.is_none() {
            let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
            problems.error(path, format!("unknown {} \"{text}\"; expected one of: {}", T::NOUN, names.join(", ")));
        }
        found
    }
}

/// A field that may be absent: `null` reads as `None` too.
impl<T: FromJson> FromJson for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            value => T::from_json(value, path, problems).map(Some),
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

/// Declares a record of the world file once: the struct (with the attributes given, so
/// its serde `Serialize` writes the same keys) and its [`FromJson`], which reads the
/// fields in the order listed and then reports unknown keys. A field is one of
/// - `pub name: T`: required;
/// - `pub name: T = default`: may be left out (or `null`), `default` stands in; the
///   expression may use the fields listed above it, each an `Option` (`None` when it
///   could not be read);
/// - `pub name: T as flattened`: `T`'s keys sit in this same object ([`FromJsonFields`]).
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty $(as $how:ident)? $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::json_reader::FromJson for $name {
            const EXPECTED: &'static str = "an object";

            fn from_json(
                value: &::serde_json::Value,
                path: &str,
                problems: &mut $crate::problem::Problems,
            ) -> Option<$name> {
                let mut reader = $crate::json_reader::ObjectReader::open(value, path, problems)?;
                $(
                    let $field = $crate::json_reader::record!(
                        @field reader, problems, $field, $ty, [$($how)?], [$($default)?]
                    );
                )*
                reader.finish(problems);
                Some($name { $( $field: $field? ),* })
            }
        }
    };
    (@field $reader:ident, $problems:ident, $field:ident, $ty:ty, [], []) => {
        $reader.required::<$ty>(stringify!($field), $problems)
    };
    (@field $reader:ident, $problems:ident, $field:ident, $ty:ty, [], [$default:expr]) => {
        $reader.optional::<$ty>(stringify!($field), $default, $problems)
    };
    (@field $reader:ident, $problems:ident, $field:ident, $ty:ty, [flattened], []) => {
        <$ty as $crate::json_reader::FromJsonFields>::from_fields(&mut $reader, $problems)
    };
}
pub(crate) use record;

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
            None => Some(default),
            Some(Value::Null) if T::NULL_IS_ABSENT => Some(default),
            Some(value) => T::from_json(value, &self.field_path(key), problems),
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

    record! {
        #[derive(Debug, PartialEq)]
        pub struct Sample {
            pub size: u32,
            pub half: u32 = size.map_or(0, |s| s / 2),
            pub note: Option<String> = None,
            pub depth: crate::model::LayerDepth = crate::model::LayerDepth::Below,
        }
    }

    fn read_sample(value: &Value) -> (Option<Sample>, Vec<String>) {
        let mut problems = Problems::default();
        let sample = Sample::from_json(value, "$.s", &mut problems);
        (sample, problems.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_record_fills_defaults_from_the_fields_above_them() {
        let (sample, errors) = read_sample(&json!({"size": 8, "note": null}));
        assert_eq!(errors, Vec::<String>::new());
        let depth = crate::model::LayerDepth::Below;
        assert_eq!(sample, Some(Sample { size: 8, half: 4, note: None, depth }));
        let (sample, _) = read_sample(&json!({"size": 8, "half": 1, "note": "hi", "depth": "above"}));
        let depth = crate::model::LayerDepth::Above;
        assert_eq!(sample, Some(Sample { size: 8, half: 1, note: Some("hi".into()), depth }));
    }

    #[test]
    fn a_record_reports_every_bad_field_then_unknown_keys() {
        let (sample, errors) = read_sample(&json!({"half": "x", "depth": "sideways", "sise": 3}));
        assert_eq!(sample, None);
        assert_eq!(
            errors,
            [
                "$.s: missing field `size` (a whole number from 0 to 4294967295)",
                "$.s.half: expected a whole number from 0 to 4294967295, found the string \"x\"",
                "$.s.depth: unknown depth \"sideways\"; expected one of: below, sorted, above",
                "$.s.sise: unknown field `sise`; the fields here are: depth, half, note, size",
            ]
        );
    }

    #[test]
    fn a_name_may_be_left_out_but_not_null() {
        let (_, errors) = read_sample(&json!({"size": 1, "depth": null}));
        assert_eq!(errors, ["$.s.depth: expected a string, found null"]);
    }
}
