//! Writes world files as JSON people can read and diff.
//!
//! serde_json's pretty printer puts every number of a tile layer on its own line, which
//! turns a 100×100 map into 10,000 lines per layer. This printer keeps small flat objects
//! (rectangles, walls, spawns) on one line and wraps number arrays one grid row per line.

use std::fmt::Write;

use serde_json::Value;

/// Pretty-prints `value`, wrapping long number arrays every `row_length` items.
pub fn to_pretty_json(value: &Value, row_length: usize) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0, row_length.max(1));
    out.push('\n');
    out
}

/// Widest line the printer writes inline, indentation excluded.
const INLINE_WIDTH: usize = 96;

/// Flat values (scalars, and objects or arrays of scalars, nested once) read best on one
/// line when they are short: rectangles, walls, spawn points, lists of IDs.
fn fits_on_one_line(value: &Value) -> bool {
    fn flat(value: &Value, depth: usize) -> bool {
        match value {
            Value::Object(map) => depth < 2 && map.values().all(|v| flat(v, depth + 1)),
            Value::Array(items) => depth < 2 && items.iter().all(|v| flat(v, depth + 1)),
            _ => true,
        }
    }
    if !flat(value, 0) {
        return false;
    }
    let mut line = String::new();
    write_inline(&mut line, value);
    line.len() <= INLINE_WIDTH
}

fn write_scalar(out: &mut String, value: &Value) {
    // Scalars always serialise.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

fn write_inline(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_scalar(out, &Value::String(key.clone()));
                out.push_str(": ");
                write_inline(out, item);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_inline(out, item);
            }
            out.push(']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, value: &Value, level: usize, row_length: usize) {
    let is_tile_grid =
        matches!(value, Value::Array(items) if items.len() > row_length && items.iter().all(Value::is_number));
    if !is_tile_grid && fits_on_one_line(value) {
        return write_inline(out, value);
    }
    match value {
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                indent(out, level + 1);
                write_scalar(out, &Value::String(key.clone()));
                out.push_str(": ");
                write_value(out, item, level + 1, row_length);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push('}');
        }
        Value::Array(items) if items.iter().all(Value::is_number) => {
            out.push_str("[\n");
            for (row_index, row) in items.chunks(row_length).enumerate() {
                indent(out, level + 1);
                for (i, item) in row.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_scalar(out, item);
                }
                let last = (row_index + 1) * row_length >= items.len();
                out.push_str(if last { "\n" } else { ",\n" });
            }
            indent(out, level);
            out.push(']');
        }
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(out, item, level + 1, row_length);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_parses_back_to_the_same_value() {
        let value = json!({
            "name": "a \"quoted\" name",
            "tiles": [1, 2, 3, 4, 5, 6, 7],
            "rects": [{"x": 1, "y": 2, "w": 3, "h": 4}],
            "nested": {"list": [[1, 2], [3, 4]], "empty": [], "obj": {}},
        });
        let text = to_pretty_json(&value, 3);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        assert!(text.contains("    1, 2, 3,\n    4, 5, 6,\n    7\n"), "{text}");
        assert!(text.contains("\"rects\": [{\"x\": 1, \"y\": 2, \"w\": 3, \"h\": 4}]"), "{text}");
    }
}
