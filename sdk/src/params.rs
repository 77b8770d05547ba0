//! Plugin parameters: the `key=value,key=value` string a plugin is constructed with.
//!
//! A token without `=` continues the previous value, so list values need no quoting:
//! `groups=0-1,2,3,rule=enn` gives `groups = "0-1,2,3"` and `rule = "enn"`.

use std::{cell::RefCell, collections::BTreeSet, str::FromStr};

/// Parsed plugin parameters. Keys a plugin never read are reported by [`Params::finish`].
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    read: RefCell<BTreeSet<String>>,
}

impl Params {
    /// Parses `key=value` pairs separated by commas (see the module docs).
    pub fn parse(text: &str) -> Result<Params, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.split_once('=') {
                Some((key, value)) => {
                    let key = key.trim();
                    if key.is_empty() {
                        return Err(format!("parameter `{token}` has no name before `=`"));
                    }
                    if pairs.iter().any(|(k, _)| k == key) {
                        return Err(format!("parameter `{key}` is given twice"));
                    }
                    pairs.push((key.to_string(), value.trim().to_string()));
                }
                None => match pairs.last_mut() {
                    Some((_, value)) => {
                        value.push(',');
                        value.push_str(token);
                    }
                    None => return Err(format!("expected `key=value`, got `{token}`")),
                },
            }
        }
        Ok(Params { pairs, read: RefCell::default() })
    }

    /// The raw value of `key`, if given.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.read.borrow_mut().insert(key.to_string());
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed as `T`, or `default` when it is not given.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get_str(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| format!("parameter `{key}={v}`: {e}")),
        }
    }

    /// Fails if a key was given that the plugin never read, naming the keys it did read.
    pub fn finish(&self) -> Result<(), String> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !read.contains(*k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = read.iter().map(String::as_str).collect();
        Err(format!(
            "unknown parameter{} `{}` (accepted: {})",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join("`, `"),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    }

    /// Every given `(key, value)`, in the order given (without marking them read).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_continue_across_commas() {
        let p = Params::parse("groups=0-1,2,3, rule = enn").unwrap();
        assert_eq!(p.get_str("groups"), Some("0-1,2,3"));
        assert_eq!(p.get_str("rule"), Some("enn"));
        p.finish().unwrap();
    }

    #[test]
    fn unknown_and_malformed_keys_are_errors() {
        let p = Params::parse("C=8,typo=1").unwrap();
        assert_eq!(p.get("C", 16u32).unwrap(), 8);
        let err = p.finish().unwrap_err();
        assert!(err.contains("typo") && err.contains("C"), "{err}");
        assert!(Params::parse("nokey").is_err());
        assert!(Params::parse("=3").is_err());
        assert!(Params::parse("a=1,a=2").is_err());
        let p = Params::parse("C=x").unwrap();
        assert!(p.get("C", 1u32).unwrap_err().contains("C=x"));
    }
}
