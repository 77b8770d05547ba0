//! What the plugins say about themselves, for `fewshot plugins list` and `show`: the listing
//! (built-ins first, then by library) and one plugin in full, with what it is once constructed.

use anyhow::{anyhow, bail, Context, Error, Result};
use fewshot_sdk::{
    ffi::{from_ffi, AnyPlugin},
    space_size, Arch, Params,
};

use super::registry::{Registered, Registry};
use crate::io::table::render;

/// Plugins in listing order: built-ins first, then by library; by kind and name within each.
pub fn sorted(registry: &Registry) -> Vec<&Registered> {
    let mut plugins: Vec<&Registered> = registry.plugins().iter().collect();
    let origin_rank = |p: &Registered| registry.plugins().iter().position(|q| q.origin == p.origin);
    plugins.sort_by_key(|p| (origin_rank(p), p.kind, p.entry.name.as_str().to_string()));
    plugins
}

/// The listing as JSON: one object per plugin with its kind, name, origin, description and
/// parameters.
pub fn list_json(registry: &Registry) -> Vec<serde_json::Value> {
    sorted(registry)
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "kind": p.kind.name(),
                "name": p.entry.name.as_str(),
                "origin": p.origin.to_string(),
                "description": p.entry.description.as_str(),
                "parameters": p.entry.parameters.as_str(),
            })
        })
        .collect()
}

/// The listing as a table: kind, name, origin, description.
pub fn list_table(registry: &Registry) -> String {
    let rows: Vec<Vec<String>> = sorted(registry)
        .iter()
        .map(|p| {
            let (kind, name) = (p.kind.name().to_string(), p.entry.name.to_string());
            vec![kind, name, p.origin.to_string(), p.entry.description.to_string()]
        })
        .collect();
    render(&["KIND", "NAME", "ORIGIN", "DESCRIPTION"], &rows)
}

/// A plugin's entry, and what it is once constructed from `spec`.
pub fn show(registry: &Registry, p: &Registered, spec: &str) -> Result<String> {
    let parameters = if p.entry.parameters.is_empty() { "none" } else { p.entry.parameters.as_str() };
    let mut text = format!(
        "{} {}\n  origin:       {}\n  description:  {}\n  parameters:   {}\n  built with:   {}\n",
        p.kind.name(),
        p.entry.name,
        p.origin,
        p.entry.description,
        parameters,
        built_with(spec)?
    );
    let plugin = registry.make(p.kind, spec)?;
    let details = describe(plugin).with_context(|| format!("{} `{}` ({})", p.kind.name(), p.entry.name, p.origin))?;
    text.push_str(&details);
    Ok(text)
}

/// The parameter values of `spec`, one `key=value` each, or that it uses the defaults.
fn built_with(spec: &str) -> Result<String> {
    let given = spec.split_once(':').map_or("", |(_, params)| params);
    let params = Params::parse(given).map_err(|e| anyhow!("`{spec}`: {e}"))?;
    if params.is_empty() {
        return Ok("the defaults".to_string());
    }
    let pairs: Vec<String> = params.pairs().map(|(key, value)| format!("{key}={value}")).collect();
    Ok(format!("{} (other parameters at their defaults)", pairs.join(", ")))
}

/// What a constructed plugin tells about itself.
fn describe(plugin: AnyPlugin) -> Result<String> {
    let mut text = String::new();
    match plugin {
        AnyPlugin::Space(space) => {
            let slots = from_ffi(space.slots()).map_err(Error::msg)?.into_vec();
            text.push_str(&format!(
                "  architectures: {} ({} slots)\n",
                space_size(&slots),
                slots.len()
            ));
            for slot in &slots {
                let options: Vec<&str> = slot.options.iter().map(|o| o.as_str()).collect();
                text.push_str(&format!("    {}: {}\n", slot.name, options.join(", ")));
            }
            let first = Arch::new(vec![0; slots.len()]);
            text.push_str(&format!("  first architecture: {}\n", from_ffi(space.format(&first)).map_err(Error::msg)?));
            text.push_str(&format!("  default groups: {}\n", from_ffi(space.default_groups()).map_err(Error::msg)?));
        }
        AnyPlugin::Rule(rule) => {
            let additive = from_ffi(rule.additive_in_series()).map_err(Error::msg)?;
            text.push_str(&format!("  additive in series: {}\n", if additive { "yes" } else { "no" }));
        }
        AnyPlugin::Splitter(splitter) => {
            text.push_str(&format!("  reads: {:?}\n", from_ffi(splitter.key()).map_err(Error::msg)?));
        }
        AnyPlugin::Sampler(sampler) => {
            let state = from_ffi(sampler.save_state()).map_err(Error::msg)?;
            let state = if state.is_empty() { "none".to_string() } else { format!("`{state}`") };
            text.push_str(&format!("  initial state: {state}\n"));
        }
        _ => bail!("a plugin of a kind this fewshot cannot show"),
    }
    Ok(text)
}
