//! What ranks and searches architectures: the supernets' accuracy, a zero-cost proxy, or an
//! ensemble of several, combined by the sum of their log-ranks (AZ-NAS's aggregation,
//! [`fewshot_core::proxy::log_rank_sum`]). Spelled as in `[eval] estimator` and `--estimator`:
//! `supernet`, `naswot`, `az`, `synflow`, `snip`, or terms joined by `+` (`supernet+az`).

use std::{fmt, str::FromStr};

use fewshot_core::proxy::Proxy;

/// One estimator of an ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Term {
    /// The accuracy of the architecture's own subspace supernet.
    Supernet,
    /// A zero-cost proxy's score.
    Proxy(Proxy),
}

impl Term {
    /// The name, as spelled in an estimator.
    pub fn name(&self) -> &'static str {
        match self {
            Term::Supernet => "supernet",
            Term::Proxy(p) => p.name(),
        }
    }
}

/// An estimator: one term, or several summed by log-rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimator {
    terms: Vec<Term>,
}

impl Estimator {
    /// The supernets alone (the EFS-NAS protocol).
    pub fn supernet() -> Estimator {
        Estimator { terms: vec![Term::Supernet] }
    }

    /// The terms, in the order given.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether the supernets must be trained for it.
    pub fn needs_supernets(&self) -> bool {
        self.terms.contains(&Term::Supernet)
    }

    /// Whether it combines several terms.
    pub fn is_ensemble(&self) -> bool {
        self.terms.len() > 1
    }
}

impl fmt::Display for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.terms.iter().map(Term::name).collect();
        f.write_str(&names.join("+"))
    }
}

impl FromStr for Estimator {
    type Err = String;
    fn from_str(s: &str) -> Result<Estimator, String> {
        let mut terms = Vec::new();
        for name in s.split('+').map(|t| t.trim().to_ascii_lowercase()) {
            let term = match name.as_str() {
                "supernet" => Term::Supernet,
                other => Term::Proxy(other.parse().map_err(|_| {
                    format!("unknown estimator `{other}` in `{s}` (expected supernet, naswot, az, synflow or snip, joined by +)")
                })?),
            };
            if terms.contains(&term) {
                return Err(format!("estimator `{s}` names `{name}` twice"));
            }
            terms.push(term);
        }
        Ok(Estimator { terms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators_parse_and_print() {
        let e: Estimator = "supernet + AZ".parse().unwrap();
        assert_eq!(e.terms(), [Term::Supernet, Term::Proxy(Proxy::Az)]);
        assert_eq!(e.to_string(), "supernet+az");
        assert!(e.needs_supernets() && e.is_ensemble());
        let e: Estimator = "naswot".parse().unwrap();
        assert!(!e.needs_supernets() && !e.is_ensemble());
        assert!("supernet+zen".parse::<Estimator>().unwrap_err().contains("unknown estimator `zen`"));
        assert!("az+az".parse::<Estimator>().unwrap_err().contains("twice"));
        assert!("".parse::<Estimator>().is_err());
    }
}
