//! Layered configuration, the same for every service: the service's defaults, then a TOML
//! file, then `ISOPLANE_<SERVICE>_*` environment variables, then the service's own checks
//! across fields. Every problem found is reported at once, in one error shape.
//!
//! A service declares which variables it reads and where each lands in its TOML tree
//! ([`EnvSetting`]); this module does the rest. Variables are applied one at a time to the
//! file's TOML table and the whole config is deserialised after each, so a bad value is
//! reported under the variable's own name (and left out) rather than as a type error deep
//! in the struct.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// What one environment variable holds, so it lands in the TOML tree with the right type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// A string (addresses, URLs and paths too: their types parse them from strings).
    Text,
    /// A whole number.
    Number,
    /// `true`/`1` or `false`/`0`.
    Flag,
    /// A comma-separated list of strings.
    List,
    /// A setting that defaults to on and can be switched off: empty or `off` turns it off
    /// (the field is read with [`switchable`]).
    Switchable,
    /// A text setting that is off unless set: empty or `off` leaves it unset.
    OptionalText,
    /// Read by the binary itself (e.g. its thread count), not part of the config.
    Ignored,
}

/// One `ISOPLANE_<SERVICE>_<NAME>` variable: `name` is the part after the prefix and `path`
/// the dotted place in the TOML tree it sets (`limits.max_upload_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct EnvSetting {
    pub name: &'static str,
    pub path: &'static str,
    pub kind: EnvKind,
}

impl EnvSetting {
    pub const fn new(name: &'static str, path: &'static str, kind: EnvKind) -> EnvSetting {
        EnvSetting { name, path, kind }
    }
}

/// A service's configuration type, loadable by [`load`].
pub trait ServiceConfig: DeserializeOwned + Default {
    /// Upper-case service name: the environment prefix is `ISOPLANE_{SERVICE}_`.
    const SERVICE: &'static str;
    /// The service as errors name it (`asset server`).
    const NAME: &'static str;
    /// The variables this service reads; any other variable with its prefix is refused.
    const ENVIRONMENT: &'static [EnvSetting];

    /// The rules between fields, each broken rule as `field: what to do`.
    fn problems(&self) -> Vec<String>;
}

/// Why a configuration cannot be used: every problem found, each naming the file, the
/// variable or the field it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The service as [`ServiceConfig::NAME`] names it.
    pub service: &'static str,
    pub problems: Vec<String>,
}

impl ConfigError {
    pub fn new(service: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError { service, problems: vec![problem.into()] }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {} configuration:", self.service)?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads the file at `path` (or starts from the defaults), applies the service's variables
/// found in `environment` (pass `std::env::vars()`), and checks the result.
pub fn load<C: ServiceConfig>(
    path: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<C, ConfigError> {
    check(load_unchecked(path, environment)?)
}

/// Reads TOML text (`origin` names it in errors) and checks the result; no environment.
pub fn from_toml<C: ServiceConfig>(text: &str, origin: &str) -> Result<C, ConfigError> {
    check(from_toml_unchecked(text, origin)?)
}

/// Reads TOML text without the checks across fields (for callers that fill in the rest
/// before checking, as the all-in-one binary does).
pub fn from_toml_unchecked<C: ServiceConfig>(text: &str, origin: &str) -> Result<C, ConfigError> {
    overlay::<C>(parse_table::<C>(text, origin)?, std::iter::empty())
}

/// Like [`load`] without the checks across fields.
pub fn load_unchecked<C: ServiceConfig>(
    path: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<C, ConfigError> {
    let table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(C::NAME, format!("cannot read {}: {e}", path.display())))?;
            parse_table::<C>(&text, &path.display().to_string())?
        }
        None => toml::Table::new(),
    };
    overlay::<C>(table, environment)
}

/// Applies the service's variables in `environment` over a config built in code (the
/// all-in-one binary's embedded services); no checks across fields.
pub fn overlay_environment<C: ServiceConfig + serde::Serialize>(
    base: &C,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<C, ConfigError> {
    let table = toml::Table::try_from(base)
        .map_err(|e| ConfigError::new(C::NAME, format!("cannot represent the built-in settings: {e}")))?;
    overlay::<C>(table, environment)
}

/// Runs the service's checks across fields.
pub fn check<C: ServiceConfig>(config: C) -> Result<C, ConfigError> {
    validate(&config)?;
    Ok(config)
}

/// The service's checks across fields, as one error.
pub fn validate<C: ServiceConfig>(config: &C) -> Result<(), ConfigError> {
    let problems = config.problems();
    if problems.is_empty() { Ok(()) } else { Err(ConfigError { service: C::NAME, problems }) }
}

/// The file as a table, after checking it deserialises on its own, so its errors carry
/// the file's line and column.
fn parse_table<C: ServiceConfig>(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    let file_error = |e: toml::de::Error| ConfigError::new(C::NAME, format!("{origin}: {e}"));
    toml::from_str::<C>(text).map_err(file_error)?;
    toml::from_str::<toml::Table>(text).map_err(file_error)
}

fn overlay<C: ServiceConfig>(
    mut table: toml::Table,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<C, ConfigError> {
    let prefix = format!("ISOPLANE_{}_", C::SERVICE);
    let mut variables: Vec<(String, String)> =
        environment.into_iter().filter(|(key, _)| key.starts_with(&prefix)).collect();
    // The environment's order is arbitrary; sorted, the same variables give the same errors.
    variables.sort();
    let mut problems = Vec::new();
    for (key, value) in variables {
        let name = &key[prefix.len()..];
        let Some(setting) = C::ENVIRONMENT.iter().find(|s| s.name == name) else {
            problems.push(format!("{key}: unknown setting"));
            continue;
        };
        let value = match env_value(setting.kind, &value) {
            Ok(EnvValue::Skip) => continue,
            Ok(value) => value,
            Err(expected) => {
                problems.push(format!("{key}: {expected}"));
                continue;
            }
        };
        let before = table.clone();
        match value {
            EnvValue::Set(value) => set_path(&mut table, setting.path, value),
            EnvValue::Unset => unset_path(&mut table, setting.path),
            EnvValue::Skip => {}
        }
        if let Err(error) = table.clone().try_into::<C>() {
            problems.push(format!("{key}: {}", error.message().trim_end()));
            table = before;
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { service: C::NAME, problems });
    }
    table.try_into::<C>().map_err(|e| ConfigError::new(C::NAME, e.message().trim_end().to_owned()))
}

/// What one variable does to the TOML tree.
enum EnvValue {
    Set(toml::Value),
    /// Back to the default.
    Unset,
    /// Nothing: the variable is not part of the config.
    Skip,
}

fn env_value(kind: EnvKind, value: &str) -> Result<EnvValue, &'static str> {
    let off = value.trim().is_empty() || value.trim() == OFF;
    Ok(EnvValue::Set(match kind {
        EnvKind::Text => toml::Value::String(value.to_owned()),
        EnvKind::Number => toml::Value::Integer(value.trim().parse().map_err(|_| "not a whole number")?),
        EnvKind::Flag => match value.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => return Err("`true` or `false`"),
        },
        EnvKind::List => toml::Value::Array(
            value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
        ),
        EnvKind::Switchable if off => toml::Value::String(OFF.into()),
        EnvKind::OptionalText if off => return Ok(EnvValue::Unset),
        EnvKind::Switchable | EnvKind::OptionalText => toml::Value::String(value.trim().to_owned()),
        EnvKind::Ignored => return Ok(EnvValue::Skip),
    }))
}

/// Removes `path` (dotted) from `table`, if there.
fn unset_path(table: &mut toml::Table, path: &str) {
    match path.split_once('.') {
        None => {
            table.remove(path);
        }
        Some((head, rest)) => {
            if let Some(toml::Value::Table(inner)) = table.get_mut(head) {
                unset_path(inner, rest);
            }
        }
    }
}

/// Sets `path` (dotted) in `table`, making the tables on the way.
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts = path.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else { return };
        current = next;
    }
}

const OFF: &str = "off";

/// For `Option` settings that default to on: the string `off` (in the file or the
/// environment) turns them off, and an unset one is written as `off`. Use as
/// `#[serde(with = "isoplane_service::config::switchable")]`.
pub mod switchable {
    use super::*;

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() || text == OFF {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S, T>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: serde::Serializer,
        T: std::fmt::Display,
    {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_str(OFF),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        listen: std::net::SocketAddr,
        name: String,
        #[serde(with = "switchable")]
        extra: Option<std::net::SocketAddr>,
        inner: Option<Inner>,
        tags: Vec<String>,
        verbose: bool,
    }

    #[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        count: u32,
        url: String,
    }

    impl Default for Inner {
        fn default() -> Inner {
            Inner { count: 7, url: "redis://127.0.0.1".into() }
        }
    }

    impl Default for Example {
        fn default() -> Example {
            Example {
                listen: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
                name: "x".into(),
                extra: "127.0.0.1:2".parse().ok(),
                inner: None,
                tags: Vec::new(),
                verbose: false,
            }
        }
    }

    impl ServiceConfig for Example {
        const SERVICE: &'static str = "EXAMPLE";
        const NAME: &'static str = "example server";
        const ENVIRONMENT: &'static [EnvSetting] = &[
            EnvSetting::new("LISTEN", "listen", EnvKind::Text),
            EnvSetting::new("EXTRA", "extra", EnvKind::Switchable),
            EnvSetting::new("NAME", "name", EnvKind::OptionalText),
            EnvSetting::new("COUNT", "inner.count", EnvKind::Number),
            EnvSetting::new("TAGS", "tags", EnvKind::List),
            EnvSetting::new("VERBOSE", "verbose", EnvKind::Flag),
            EnvSetting::new("THREADS", "", EnvKind::Ignored),
        ];
        fn problems(&self) -> Vec<String> {
            if self.name.is_empty() { vec!["name: must not be empty".into()] } else { Vec::new() }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn environment_overrides_the_file_and_fills_nested_tables_from_their_defaults() {
        let file = tempfile_with("listen = \"127.0.0.1:5\"\nname = \"file\"\n");
        let config: Example = load(
            Some(file.path()),
            vars(&[
                ("ISOPLANE_EXAMPLE_LISTEN", "127.0.0.1:9"),
                ("ISOPLANE_EXAMPLE_COUNT", "3"),
                ("ISOPLANE_EXAMPLE_TAGS", "a, b,,c"),
                ("ISOPLANE_EXAMPLE_VERBOSE", "1"),
                ("ISOPLANE_EXAMPLE_THREADS", "4"),
                ("ISOPLANE_OTHER_LISTEN", "nonsense"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen.port(), 9);
        assert_eq!(config.name, "file");
        assert_eq!(config.inner, Some(Inner { count: 3, url: "redis://127.0.0.1".into() }));
        assert_eq!(config.tags, ["a", "b", "c"]);
        assert!(config.verbose);
    }

    #[test]
    fn off_switches_an_optional_setting_off_in_the_file_and_the_environment() {
        let from_env: Example =
            load(None, vars(&[("ISOPLANE_EXAMPLE_EXTRA", "off")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_env.extra, None);
        let empty: Example = load(None, vars(&[("ISOPLANE_EXAMPLE_EXTRA", "")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.extra, None);
        let from_file: Example = from_toml("extra = \"off\"", "x.toml").unwrap_or_else(|e| panic!("{e}"));
        let unset: Example =
            load_unchecked(None, vars(&[("ISOPLANE_EXAMPLE_NAME", "off")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unset.name, Example::default().name);
        assert_eq!(from_file.extra, None);
        let set: Example =
            load(None, vars(&[("ISOPLANE_EXAMPLE_EXTRA", "127.0.0.1:3")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.extra.map(|a| a.port()), Some(3));
        assert_eq!(Example::default().extra.map(|a| a.port()), Some(2));
    }

    #[test]
    fn the_environment_overlays_a_config_built_in_code_keeping_what_is_switched_off() {
        let base = Example { name: "built".into(), extra: None, ..Example::default() };
        let config: Example = overlay_environment(&base, vars(&[("ISOPLANE_EXAMPLE_LISTEN", "127.0.0.1:4")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen.port(), 4);
        assert_eq!(config.name, "built");
        assert_eq!(config.extra, None);
    }

    #[test]
    fn every_bad_variable_is_reported_under_its_own_name() {
        let error = load::<Example>(
            None,
            vars(&[
                ("ISOPLANE_EXAMPLE_LISTEN", "not an address"),
                ("ISOPLANE_EXAMPLE_COUNT", "many"),
                ("ISOPLANE_EXAMPLE_VERBOSE", "yes"),
                ("ISOPLANE_EXAMPLE_NOPE", "1"),
            ]),
        )
        .err()
        .unwrap_or_else(|| panic!("bad variables were accepted"));
        assert_eq!(error.service, "example server");
        let problems = error.problems.join("\n");
        for name in ["COUNT: not a whole number", "LISTEN: ", "NOPE: unknown setting", "VERBOSE: `true` or `false`"] {
            assert!(problems.contains(&format!("ISOPLANE_EXAMPLE_{name}")), "{problems}");
        }
        assert_eq!(error.problems.len(), 4);
        assert!(error.to_string().starts_with("invalid example server configuration:\n  "));
    }

    #[test]
    fn a_bad_file_names_itself_and_the_checks_across_fields_run_last() {
        let error = from_toml::<Example>("nope = 1", "site.toml").err().unwrap_or_else(|| panic!("accepted"));
        assert!(error.problems[0].starts_with("site.toml: "), "{error}");
        assert!(error.problems[0].contains("nope"), "{error}");
        let error = from_toml::<Example>("name = \"\"", "site.toml").err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.problems, ["name: must not be empty"]);
        assert!(from_toml_unchecked::<Example>("name = \"\"", "site.toml").is_ok());
        let missing = load::<Example>(Some(Path::new("/nonexistent/isoplane.toml")), Vec::new());
        assert!(missing.err().is_some_and(|e| e.problems[0].starts_with("cannot read /nonexistent/isoplane.toml")));
    }

    fn tempfile_with(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        file.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        file
    }
}
