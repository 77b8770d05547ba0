//! `fewshot plugins`: list the available plugins.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::registry::Registry;

/// Arguments of `fewshot plugins`.
#[derive(Args, Debug)]
pub struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// List every plugin: kind, name, origin, description.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Table,
    Json,
}

/// Runs `fewshot plugins`.
pub fn run(args: &PluginsArgs, registry: &Registry) -> Result<()> {
    match &args.command {
        PluginsCommand::List { format } => {
            let rows: Vec<serde_json::Value> = registry
                .plugins()
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "kind": p.kind.name(),
                        "name": p.entry.name.as_str(),
                        "origin": p.origin.to_string(),
                        "description": p.entry.description.as_str(),
                    })
                })
                .collect();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => {
                    println!("{:<9} {:<16} {:<10} description", "kind", "name", "origin");
                    for p in registry.plugins() {
                        println!(
                            "{:<9} {:<16} {:<10} {}",
                            p.kind.name(),
                            p.entry.name,
                            p.origin,
                            p.entry.description
                        );
                    }
                }
            }
            Ok(())
        }
    }
}
