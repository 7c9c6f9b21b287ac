//! Settings in layers: flag > environment > config file > default.
//!
//! Each setting, with its environment name and its default, is declared once: as a clap
//! argument (`long`, `env`, `default_value`) on a struct per role that also derives serde
//! (`ServeSettings`, `DataSettings`, `ConnSettings`). Clap resolves the flag, the environment
//! and the default, and `ArgMatches::value_source` tells which of them it took; a key of the
//! TOML file named by `--config` then replaces a value that came from the default or from
//! nowhere. The file's keys are the struct's field names (the arguments' ids, snake_case);
//! a key that names no setting is an error.
//!
//! Decision: a small serde layer rather than figment. Figment would want the defaults
//! written a second time (as a serialized default struct) or kept out of `--help`; here clap
//! stays the one place, and `--help` shows every default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::CliError;

/// Where a setting's value came from, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Flag,
    Env,
    /// A second environment name tried after the first (the client's `GONG_*` names).
    FallbackEnv,
    File,
    Default,
    /// Not given anywhere and without a default.
    Unset,
}

/// The ids of the arguments a clap `Args` struct declares: the keys its config file takes.
pub fn keys_of<A: clap::Args>() -> Vec<String> {
    A::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// Reads a TOML config file. Any failure is a usage error (exit 2).
pub fn read_toml(path: &Path) -> Result<toml::Table, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| CliError::Usage(format!("invalid config file {}: {e}", path.display())))
}

/// A settings struct being resolved layer by layer, as a map of its fields.
pub struct Layered<T> {
    fields: Map<String, Value>,
    sources: HashMap<String, Source>,
    _type: std::marker::PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> Layered<T> {
    /// Starts from what clap parsed (flags, environment, defaults), with the source of each.
    pub fn new(parsed: &T, matches: &ArgMatches) -> Layered<T> {
        let fields = match serde_json::to_value(parsed) {
            Ok(Value::Object(map)) => map,
            // Settings structs are plain structs of scalars and paths.
            other => panic!("settings serialize to a map, not {other:?}"),
        };
        let ids: Vec<String> = matches.ids().map(|id| id.to_string()).collect();
        let sources = fields
            .keys()
            .map(|key| {
                let empty = matches!(&fields[key], Value::String(s) if s.is_empty());
                let source = if ids.iter().any(|id| id == key) && !empty {
                    match matches.value_source(key) {
                        Some(ValueSource::CommandLine) => Source::Flag,
                        Some(ValueSource::EnvVariable) => Source::Env,
                        Some(ValueSource::DefaultValue) => Source::Default,
                        Some(_) | None => Source::Unset,
                    }
                } else {
                    Source::Unset
                };
                (key.clone(), source)
            })
            .collect();
        Layered {
            fields,
            sources,
            _type: std::marker::PhantomData,
        }
    }

    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Unset)
    }

    fn weaker_than(&self, key: &str, source: Source) -> bool {
        self.source(key) > source
    }

    /// Takes `key` from the environment variable `name` (when set and not empty) unless a
    /// flag or the setting's own variable gave it.
    pub fn env_fallback(mut self, key: &str, name: &str) -> Self {
        if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
            if self.weaker_than(key, Source::FallbackEnv) {
                self.fields.insert(key.to_string(), Value::String(value));
                self.sources.insert(key.to_string(), Source::FallbackEnv);
            }
        }
        self
    }

    /// Lays the config file under the flags and the environment. `allowed` are the keys
    /// the file may hold (a key outside it is an error); of those, only `T`'s are taken.
    pub fn file(
        mut self,
        table: &toml::Table,
        allowed: &[String],
        path: &Path,
    ) -> Result<Self, CliError> {
        let invalid = |detail: String| {
            CliError::Usage(format!("invalid config file {}: {detail}", path.display()))
        };
        for (key, value) in table {
            if !allowed.iter().any(|k| k == key) {
                let mut known = allowed.to_vec();
                known.sort();
                return Err(invalid(format!(
                    "unknown key `{key}`; the keys are {}",
                    known.join(", ")
                )));
            }
            if !self.fields.contains_key(key) || !self.weaker_than(key, Source::File) {
                continue;
            }
            let value =
                serde_json::to_value(value).map_err(|e| invalid(format!("`{key}`: {e}")))?;
            let before = self.fields.insert(key.clone(), value);
            // Checked key by key, so that the message names the key with the wrong type.
            if let Err(e) = serde_json::from_value::<T>(Value::Object(self.fields.clone())) {
                if let Some(before) = before {
                    self.fields.insert(key.clone(), before);
                }
                return Err(invalid(format!("`{key}`: {e}")));
            }
            self.sources.insert(key.clone(), Source::File);
        }
        Ok(self)
    }

    /// The config file at `path`, if any, read and laid under the flags and environment.
    pub fn file_at(self, path: Option<&Path>, allowed: &[String]) -> Result<Self, CliError> {
        match path {
            Some(path) => {
                let table = read_toml(path)?;
                self.file(&table, allowed, path)
            }
            None => Ok(self),
        }
    }

    pub fn finish(self) -> Result<T, CliError> {
        Ok(self.finish_with_sources()?.0)
    }

    /// The settings, and where each came from.
    pub fn finish_with_sources(self) -> Result<(T, HashMap<String, Source>), CliError> {
        let mut fields = self.fields;
        // An empty value counts as not given (e.g. `--access-key ""` or `INTAKE_URL=`).
        for (key, source) in &self.sources {
            if *source == Source::Unset {
                if let Some(v) = fields.get_mut(key) {
                    if matches!(v, Value::String(s) if s.is_empty()) {
                        *v = Value::Null;
                    }
                }
            }
        }
        let value = serde_json::from_value(Value::Object(fields))
            .map_err(|e| CliError::Usage(format!("invalid settings: {e}")))?;
        Ok((value, self.sources))
    }
}

/// The data dir's default, shared by `serve`, `admin` and the client (which finds the first
/// credentials there).
pub const DEFAULT_DATA_DIR: &str = "./intake-data";

/// `./intake-data` as a path.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};
    use serde::Deserialize;

    #[derive(Parser, Serialize, Deserialize, Debug, PartialEq)]
    struct Example {
        #[arg(long, env = "INTAKE_TEST_SETTINGS_NUMBER", default_value_t = 3)]
        number: u32,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "x")]
        word: String,
    }

    fn layered(args: &[&str], file: &str) -> Result<(Example, Layered<Example>), CliError> {
        let matches = Example::command().get_matches_from(args);
        let parsed = Example::from_arg_matches(&matches).unwrap();
        let layers = Layered::new(&parsed, &matches);
        let sources = Layered::<Example>::new(&parsed, &matches);
        let table: toml::Table = toml::from_str(file).unwrap();
        let merged = layers
            .file(&table, &keys_of::<Example>(), Path::new("test.toml"))?
            .finish()?;
        Ok((merged, sources))
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let (merged, sources) = layered(
            &["x", "--word", "flag"],
            "word = \"file\"\nnumber = 7\nname = \"n\"",
        )
        .unwrap();
        assert_eq!(
            merged,
            Example {
                number: 7,
                name: Some("n".into()),
                word: "flag".into()
            }
        );
        assert_eq!(sources.source("word"), Source::Flag);
        assert_eq!(sources.source("number"), Source::Default);
        assert_eq!(sources.source("name"), Source::Unset);
        let (merged, _) = layered(&["x"], "").unwrap();
        assert_eq!(merged.number, 3);
        assert_eq!(merged.word, "x");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_usage_errors() {
        let Err(CliError::Usage(msg)) = layered(&["x"], "colour = 1") else {
            panic!("unknown key accepted")
        };
        assert!(msg.contains("unknown key `colour`"), "{msg}");
        let Err(CliError::Usage(msg)) = layered(&["x"], "number = \"many\"") else {
            panic!("wrong type accepted")
        };
        assert!(msg.contains("`number`"), "{msg}");
    }
}
