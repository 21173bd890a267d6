//! App variables: `[variables]` declarations, component bindings written as `{{ name }}`
//! templates, and their resolution from providers. Secret values never reach a log line.

use crate::VariableSources;
use std::collections::HashMap;
use std::fmt;

/// One `[variables]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    pub name: String,
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// A component variable's value: literal text and `{{ variable }}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(TemplatePart::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                format!("template {text:?} has a `{{{{` without a closing `}}}}`")
            })?;
            let name = after[..end].trim();
            if !is_valid_variable_name(name) {
                return Err(format!(
                    "template {text:?} refers to {name:?}, which is not a variable name \
                     (lowercase letters, digits and `_`, starting with a letter)"
                ));
            }
            parts.push(TemplatePart::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!(
                "template {text:?} has a `}}}}` without an opening `{{{{`"
            ));
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The app variables this template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Variable(name) => Some(name.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The text with each variable replaced by `value(name)`.
    pub(crate) fn render_with(&self, value: impl Fn(&str) -> String) -> String {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(literal) => text.push_str(literal),
                TemplatePart::Variable(name) => text.push_str(&value(name)),
            }
        }
        text
    }

    fn render(&self, values: &HashMap<String, Value>) -> Value {
        let mut text = String::new();
        let mut secret = false;
        for part in &self.parts {
            match part {
                TemplatePart::Literal(literal) => text.push_str(literal),
                TemplatePart::Variable(name) => {
                    if let Some(value) = values.get(name) {
                        text.push_str(&value.text);
                        secret |= value.secret;
                    }
                }
            }
        }
        Value { text, secret }
    }
}

/// Variable names: lowercase letters, digits and `_`, starting with a letter.
pub fn is_valid_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A resolved value; `Debug` and `Display` hide it when it is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    text: String,
    secret: bool,
}

impl Value {
    pub fn expose(&self) -> &str {
        &self.text
    }

    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            write!(f, "{:?}", self.text)
        }
    }
}

/// Every app variable's value, resolved once at start-up.
#[derive(Debug, Clone, Default)]
pub struct ResolvedVariables {
    values: HashMap<String, Value>,
}

impl ResolvedVariables {
    /// Resolves `declarations` from `sources`. Errors name how to supply a missing value.
    pub fn resolve(
        declarations: &[VariableDecl],
        sources: &VariableSources,
    ) -> Result<Self, String> {
        for (name, _) in &sources.overrides {
            if !declarations.iter().any(|d| &d.name == name) {
                return Err(format!(
                    "--variable {name}=...: the app declares no variable `{name}` (declare it under [variables])"
                ));
            }
        }
        let mut values = HashMap::new();
        for decl in declarations {
            let text = match sources
                .lookup(&decl.name)
                .map_err(|e| format!("variable `{}`: {e}", decl.name))?
                .or_else(|| decl.default.clone())
            {
                Some(text) => text,
                None => {
                    return Err(format!(
                        "variable `{}` is required and has no value: {}",
                        decl.name,
                        sources.how_to_supply(&decl.name)
                    ))
                }
            };
            values.insert(
                decl.name.clone(),
                Value {
                    text,
                    secret: decl.secret,
                },
            );
        }
        Ok(ResolvedVariables { values })
    }

    /// `template` rendered with the app's values.
    pub fn render(&self, template: &Template) -> Value {
        template.render(&self.values)
    }

    /// A component's variables: its templates rendered with the app's values.
    pub fn for_component(&self, bindings: &[(String, Template)]) -> Vec<(String, Value)> {
        bindings
            .iter()
            .map(|(name, template)| (name.clone(), template.render(&self.values)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VariableProvider;

    fn decl(name: &str, default: Option<&str>, secret: bool) -> VariableDecl {
        VariableDecl {
            name: name.into(),
            default: default.map(Into::into),
            required: default.is_none(),
            secret,
        }
    }

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("{{ api_url }}/v1?k={{key}}").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), vec!["api_url", "key"]);
        let decls = [
            decl("api_url", Some("https://x"), false),
            decl("key", Some("k1"), true),
        ];
        let resolved = ResolvedVariables::resolve(&decls, &VariableSources::default()).unwrap();
        let values = resolved.for_component(&[("url".into(), t)]);
        assert_eq!(values[0].1.expose(), "https://x/v1?k=k1");
        assert!(
            values[0].1.is_secret(),
            "a value built from a secret is secret"
        );
        assert_eq!(format!("{:?}", values[0].1), "<secret>");
        assert!(Template::parse("plain")
            .unwrap()
            .references()
            .next()
            .is_none());
    }

    #[test]
    fn bad_templates() {
        assert!(Template::parse("{{ open")
            .unwrap_err()
            .contains("without a closing"));
        assert!(Template::parse("close }}")
            .unwrap_err()
            .contains("without an opening"));
        assert!(Template::parse("{{ Bad-Name }}")
            .unwrap_err()
            .contains("not a variable name"));
    }

    #[test]
    fn providers_in_priority_order() {
        let decls = [decl("token", None, true), decl("url", Some("d"), false)];
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join(".env");
        std::fs::write(&dotenv, "KITE_VARIABLE_TOKEN=from-dotenv\n").unwrap();
        let load = |overrides: &[(&str, &str)], environment: &[(&str, &str)], dotenv| {
            VariableSources::load_with_environment(
                overrides
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                &VariableProvider::default_chain(dotenv, crate::ENV_PREFIX),
                environment
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .unwrap()
        };
        let err = ResolvedVariables::resolve(&decls, &load(&[], &[], None)).unwrap_err();
        assert_eq!(
            err,
            "variable `token` is required and has no value: set KITE_VARIABLE_TOKEN in the environment, or pass `--variable token=VALUE`"
        );
        let r = ResolvedVariables::resolve(&decls, &load(&[], &[], Some(dotenv.clone()))).unwrap();
        assert_eq!(r.values["token"].expose(), "from-dotenv");
        assert_eq!(r.values["url"].expose(), "d");
        let environment = [("KITE_VARIABLE_TOKEN", "from-env")];
        let r = ResolvedVariables::resolve(&decls, &load(&[], &environment, Some(dotenv.clone())))
            .unwrap();
        assert_eq!(r.values["token"].expose(), "from-env");
        let cli = [("token", "from-cli")];
        let r = ResolvedVariables::resolve(&decls, &load(&cli, &environment, Some(dotenv.clone())))
            .unwrap();
        assert_eq!(r.values["token"].expose(), "from-cli");
        assert!(
            ResolvedVariables::resolve(&decls, &load(&[("nope", "x")], &[], None))
                .unwrap_err()
                .contains("declares no variable `nope`")
        );
    }
}
