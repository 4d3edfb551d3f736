//! The effective configuration as TOML, for `segnode check-config`: every key with the value
//! the node will use, each key the file left out marked `# default`. The text parses back
//! into the same configuration.

use super::{Config, ConfigError};

impl Config {
    /// The effective configuration as TOML. `given` is the text it was loaded from: keys
    /// absent there are marked `# default`. Keys inside `[[arrays of tables]]` are not
    /// marked (every entry comes from the file).
    pub fn effective_toml(&self, given: &str) -> Result<String, ConfigError> {
        let rendered = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            file: "<effective config>".into(),
            message: e.to_string(),
        })?;
        let given: toml::Table = given.parse().unwrap_or_default();
        let mut out = String::with_capacity(rendered.len() * 2);
        // The table the lines below belong to; None inside an array of tables.
        let mut table: Option<Vec<String>> = Some(Vec::new());
        let mut in_value = 0i32;
        for line in rendered.lines() {
            let trimmed = line.trim();
            if in_value == 0 && trimmed.starts_with("[[") {
                table = None;
            } else if in_value == 0 && trimmed.starts_with('[') && trimmed.ends_with(']') {
                let name = &trimmed[1..trimmed.len() - 1];
                table = Some(
                    name.split('.')
                        .map(|k| k.trim().trim_matches('"').to_string())
                        .collect(),
                );
            } else if in_value == 0
                && let (Some(path), Some((key, _))) = (&table, trimmed.split_once(" = "))
            {
                let mut path = path.clone();
                path.push(key.trim().trim_matches('"').to_string());
                in_value = bracket_depth(trimmed).max(0);
                if !is_given(&given, &path) {
                    out.push_str(line);
                    out.push_str(if in_value > 0 {
                        " # default\n"
                    } else {
                        "  # default\n"
                    });
                    continue;
                }
            } else if in_value > 0 {
                in_value += bracket_depth(trimmed);
            }
            out.push_str(line);
            out.push('\n');
        }
        Ok(out)
    }
}

/// How many brackets a line opens more than it closes (outside strings, roughly: values
/// here are paths, names and numbers), to follow a multi-line array.
fn bracket_depth(line: &str) -> i32 {
    let mut depth = 0;
    let mut in_string = false;
    for c in line.chars() {
        match c {
            '"' | '\'' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Whether the file set the key at `path`.
fn is_given(given: &toml::Table, path: &[String]) -> bool {
    let mut table = given;
    for (i, key) in path.iter().enumerate() {
        match table.get(key) {
            None => return false,
            Some(toml::Value::Table(inner)) if i + 1 < path.len() => table = inner,
            // Inside an array of tables: every entry comes from the file.
            Some(toml::Value::Array(_)) => return true,
            Some(_) => return i + 1 == path.len(),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "[node]\nae_title = 'NODE_A'\nport = 4242\ndata_dir = '/srv/segnode'\n\
                         [pipelines]\nmodels_dir = '/srv/models'\n";

    #[test]
    fn effective_config_marks_defaults_and_round_trips() {
        let cfg = Config::from_toml(GIVEN, "given.toml", None).unwrap();
        let text = cfg.effective_toml(GIVEN).unwrap();
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("no {key} in\n{text}"))
                .to_string()
        };
        assert_eq!(line("ae_title"), "ae_title = \"NODE_A\"");
        assert_eq!(line("port").trim_end(), "port = 4242");
        assert!(line("bind").ends_with("# default"), "{text}");
        assert!(text.contains("\"dce_breast\""), "{text}");
        assert!(line("enabled").ends_with("# default"), "{text}");
        assert!(!line("models_dir").contains("# default"), "{text}");

        // It parses back into the same configuration.
        let again = Config::from_toml(&text, "effective.toml", None).unwrap();
        assert_eq!(
            toml::to_string(&again).unwrap(),
            toml::to_string(&cfg).unwrap()
        );
        assert_eq!(again.effective_toml(GIVEN).unwrap(), text);
    }
}
