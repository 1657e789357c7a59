//! Reading docker-compose.yml as Compose would: the `.env` file, `${VAR:-default}`
//! interpolation, and what the file gives each service (command, environment, configs).

// A compose file of another shape than Isoplane's fails the test that reads it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
pub fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut vars = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{}: `{line}`", path.display()));
        vars.insert(key.trim().to_owned(), value.trim().trim_matches('"').to_owned());
    }
    vars
}

/// Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}`.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').unwrap_or_else(|| panic!("unclosed ${{ in `{text}`"));
            let expression = &after[..end];
            rest = &after[end + 1..];
            let name_end = expression.find([':', '-', '?']).unwrap_or(expression.len());
            let (name, modifier) = expression.split_at(name_end);
            let value = vars.get(name).filter(|v| !v.is_empty() || !modifier.starts_with(':'));
            let value = match (value, modifier.trim_start_matches(':').chars().next()) {
                (Some(value), _) => value.clone(),
                (None, Some('-')) => modifier.trim_start_matches(':')[1..].to_owned(),
                (None, Some('?')) => panic!("compose would refuse to start: {name}: {}", &modifier[2..]),
                (None, _) => String::new(),
            };
            out.push_str(&value);
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.push_str(vars.get(&rest[..end]).map_or("", String::as_str));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// What the compose file gives one service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    /// Config files: (path in the container, content).
    pub configs: Vec<(String, String)>,
}

pub fn service_spec(compose: &Value, name: &str, vars: &BTreeMap<String, String>) -> ServiceSpec {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "docker-compose.yml has no service `{name}`");
    let text = |value: &Value| interpolate(value.as_str().unwrap_or_else(|| panic!("{name}: {value:?}")), vars);
    let command = service["command"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: command must be a list"))
        .iter()
        .map(text)
        .collect();
    let environment = service["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{name}: environment must be a map"))
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => text(other),
            };
            (key.as_str().unwrap().to_owned(), value)
        })
        .collect();
    let configs = service["configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|entry| {
            let source = entry["source"].as_str().unwrap();
            let content = compose["configs"][source]["content"].as_str().expect("configs with inline content");
            (entry["target"].as_str().unwrap().to_owned(), interpolate(content, vars))
        })
        .collect();
    ServiceSpec { command, environment, configs }
}

/// docker-compose.yml with its `<<: *anchor` merges applied.
pub fn read_compose(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut compose: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compose.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compose
}
