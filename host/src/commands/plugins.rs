//! `fewshot plugins`: list, show and check plugins.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fewshot_sdk::PluginKind;

use crate::{
    cli::Format,
    io::output::print,
    plugin_host::{
        conformance::{check_library, CheckOptions, DEFAULT_SAMPLES},
        describe::{list_json, list_table, show},
        registry::{spec_name, Registered, Registry},
    },
};

/// Arguments of `fewshot plugins`.
#[derive(Args, Debug)]
pub struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// List every plugin: kind, name, origin (built-in or library path), description.
    List {
        /// Output format. JSON is an array of objects with keys kind, name, origin, description
        /// and parameters.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one plugin in full: the parameters it accepts, and what it is once constructed
    /// (a space's slots and options, a splitter's key, ...).
    Show {
        /// The plugin, as `name` or `name:key=value,...` (constructed with those parameters).
        spec: String,
        /// Its kind, when plugins of several kinds share the name.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
    },
    /// Load one plugin library and run the conformance checks on every plugin in it.
    ///
    /// Only LIB and the built-in plugins are loaded (not --plugin or FEWSHOT_PLUGIN_PATH). Prints
    /// one PASS, FAIL or SKIP line per check and exits with status 2 if any fails. The checks run
    /// in a child process, so a library that aborts it is reported as such.
    Check {
        /// The plugin library (a .so / .dylib / .dll file).
        library: PathBuf,
        /// Check a plugin of LIB with these parameters instead of its defaults, as
        /// `name:key=value,...` (e.g. `act-chain:layers=12,activation=tanh`). Repeatable; a
        /// plugin given several times is checked once per spec.
        #[arg(long = "params", value_name = "SPEC")]
        params: Vec<String>,
        /// Architectures sampled per search space.
        #[arg(long, default_value_t = DEFAULT_SAMPLES as u32, value_parser = clap::value_parser!(u32).range(1..))]
        samples: u32,
        /// Seed of the sampled architectures.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// A plugin kind, as `--kind` names it.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Kind {
    Space,
    Rule,
    Splitter,
    Sampler,
}

impl Kind {
    fn plugin_kind(self) -> PluginKind {
        match self {
            Kind::Space => PluginKind::Space,
            Kind::Rule => PluginKind::Rule,
            Kind::Splitter => PluginKind::Splitter,
            Kind::Sampler => PluginKind::Sampler,
        }
    }
}

/// Runs `fewshot plugins`; `registry` loads every plugin (not needed by `check`, which loads
/// only the library it checks, next to the built-ins).
pub fn run(args: &PluginsArgs, registry: impl FnOnce() -> Result<Registry>) -> Result<()> {
    match &args.command {
        PluginsCommand::List { format } => {
            let registry = registry()?;
            let text = match format {
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&list_json(&registry))?),
                Format::Table => list_table(&registry),
            };
            print(&text)?;
        }
        PluginsCommand::Show { spec, kind } => {
            let registry = registry()?;
            let name = spec_name(spec);
            let found: Vec<&Registered> = registry
                .plugins()
                .iter()
                .filter(|p| p.entry.name.as_str() == name && kind.is_none_or(|k| k.plugin_kind() == p.kind))
                .collect();
            if found.is_empty() {
                let of_kind = kind.map(|k| format!(" of kind {}", k.plugin_kind().name())).unwrap_or_default();
                bail!("no plugin named `{name}`{of_kind} (`fewshot plugins list` shows them all)");
            }
            let mut text = Vec::new();
            for plugin in found {
                text.push(show(&registry, plugin, spec)?);
            }
            print(&text.join("\n"))?;
        }
        PluginsCommand::Check { library, params, samples, seed } => {
            if std::env::var_os(CHECK_CHILD_VAR).is_none() {
                return check_in_child(library);
            }
            check_library(library, &CheckOptions { samples: *samples as usize, seed: *seed }, params)?;
        }
    }
    Ok(())
}

/// Set in the child process that `plugins check` runs its checks in.
const CHECK_CHILD_VAR: &str = "FEWSHOT_PLUGINS_CHECK_CHILD";

/// Runs this `plugins check` again in a child process and ends with its exit status, so that a
/// library that kills the process (built with `panic = "abort"`, or calling `abort`) is
/// explained instead of ending fewshot without a word.
fn check_in_child(library: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the fewshot executable to run the checks")?;
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHECK_CHILD_VAR, "1")
        .status()
        .context("cannot start the process that runs the checks")?;
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    let lib = library.display();
    match signal(status) {
        Some(6) => bail!(
            "{lib} aborted the process while being checked (signal 6, SIGABRT), after the lines above: \
             plugin code that aborts cannot be turned into an error. A library built with \
             `panic = \"abort\"` aborts on any panic; rebuild it without (the `export_plugins!` of this \
             fewshot-sdk refuses to compile it), and look for `std::process::abort` or a panic inside a panic"
        ),
        Some(n) => bail!("{lib} crashed the process while being checked (signal {n}), after the lines above"),
        None => bail!("the process checking {lib} ended without an exit status"),
    }
}

/// The signal that ended a process, where the platform has signals.
fn signal(status: ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        std::os::unix::process::ExitStatusExt::signal(&status)
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}
