//! The plugin registry: built-in plugins (registered with `inventory` in `fewshot-plugins`) and
//! plugin libraries loaded with abi_stable, behind one interface.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Result};
use fewshot_sdk::{
    abi_stable::library::{lib_header_from_path, LibraryError},
    ffi::{AnyPlugin, PluginLibraryRef, RuleBox, SamplerBox, SpaceBox, SplitterBox},
    PluginEntry, PluginKind,
};

// The built-in set registers itself with inventory; the linker drops it unless referenced.
use fewshot_plugins as _;

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into this binary.
    Builtin,
    /// Loaded from a shared library.
    Library(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => write!(f, "built-in"),
            Origin::Library(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One plugin the registry knows.
pub struct Registered {
    /// The entry (name, description, constructor).
    pub entry: PluginEntry,
    /// Its kind.
    pub kind: PluginKind,
    /// Where it came from.
    pub origin: Origin,
}

/// Every plugin available to this process.
pub struct Registry {
    plugins: Vec<Registered>,
}

/// Name of the environment variable listing folders of plugin libraries.
pub const PLUGIN_PATH_VAR: &str = "FEWSHOT_PLUGIN_PATH";

impl Registry {
    /// The built-ins, then every library in the folders of `FEWSHOT_PLUGIN_PATH`, then the
    /// libraries given with `--plugin`.
    pub fn load(libraries: &[PathBuf]) -> Result<Registry> {
        let mut registry = Registry { plugins: Vec::new() };
        for entry in fewshot_sdk::ffi::builtin_entries() {
            registry.add(entry, Origin::Builtin)?;
        }
        for path in plugin_path_libraries()? {
            registry.load_library(&path)?;
        }
        for path in libraries {
            registry.load_library(path)?;
        }
        Ok(registry)
    }

    /// Loads one plugin library and adds its plugins.
    pub fn load_library(&mut self, path: &Path) -> Result<()> {
        let entries = open_library(path)?;
        for entry in entries {
            self.add(entry, Origin::Library(path.to_path_buf()))?;
        }
        Ok(())
    }

    fn add(&mut self, entry: PluginEntry, origin: Origin) -> Result<()> {
        let Some(kind) = entry.kind() else {
            bail!(
                "plugin `{}` from {origin} is of a kind this fewshot does not know (built with a newer SDK)",
                entry.name
            );
        };
        if let Some(other) = self
            .plugins
            .iter()
            .find(|p| p.kind == kind && p.entry.name == entry.name)
        {
            bail!(
                "two {} plugins are named `{}`: one from {}, one from {}",
                kind.name(),
                entry.name,
                other.origin,
                origin
            );
        }
        self.plugins.push(Registered { entry, kind, origin });
        Ok(())
    }

    /// Every registered plugin, in registration order.
    pub fn plugins(&self) -> &[Registered] {
        &self.plugins
    }

    /// Constructs a plugin from a spec `name` or `name:key=value,...`.
    pub fn make(&self, kind: PluginKind, spec: &str) -> Result<AnyPlugin> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.trim();
        let Some(found) = self
            .plugins
            .iter()
            .find(|p| p.kind == kind && p.entry.name.as_str() == name)
        else {
            let known: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.entry.name.as_str())
                .collect();
            bail!("no {} plugin named `{name}` (available: {})", kind.name(), known.join(", "));
        };
        let made = found
            .entry
            .maker
            .make(params.into())
            .into_result()
            .map_err(|e| anyhow!("{} `{name}` ({}): {e}", kind.name(), found.origin))?;
        made.into_enum()
            .map_err(|_| anyhow!("{} `{name}` returned a plugin of an unknown kind", kind.name()))
    }

    /// Constructs a search space.
    pub fn space(&self, spec: &str) -> Result<SpaceBox> {
        match self.make(PluginKind::Space, spec)? {
            AnyPlugin::Space(s) => Ok(s),
            _ => bail!("`{spec}` did not construct a search space"),
        }
    }

    /// Constructs a counting rule.
    pub fn rule(&self, spec: &str) -> Result<RuleBox> {
        match self.make(PluginKind::Rule, spec)? {
            AnyPlugin::Rule(r) => Ok(r),
            _ => bail!("`{spec}` did not construct a counting rule"),
        }
    }

    /// Constructs a splitter.
    pub fn splitter(&self, spec: &str) -> Result<SplitterBox> {
        match self.make(PluginKind::Splitter, spec)? {
            AnyPlugin::Splitter(s) => Ok(s),
            _ => bail!("`{spec}` did not construct a splitter"),
        }
    }

    /// Constructs a sampler.
    pub fn sampler(&self, spec: &str) -> Result<SamplerBox> {
        match self.make(PluginKind::Sampler, spec)? {
            AnyPlugin::Sampler(s) => Ok(s),
            _ => bail!("`{spec}` did not construct a sampler"),
        }
    }
}

/// The shared libraries in the folders listed in `FEWSHOT_PLUGIN_PATH`.
fn plugin_path_libraries() -> Result<Vec<PathBuf>> {
    let Some(value) = std::env::var_os(PLUGIN_PATH_VAR) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
        let listing = std::fs::read_dir(&dir)
            .map_err(|e| anyhow!("{PLUGIN_PATH_VAR} names {}, which cannot be read: {e}", dir.display()))?;
        let mut libs: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == std::env::consts::DLL_EXTENSION))
            .collect();
        libs.sort();
        found.extend(libs);
    }
    Ok(found)
}

/// Opens a plugin library and returns its entries.
fn open_library(path: &Path) -> Result<Vec<PluginEntry>> {
    if !path.exists() {
        bail!("plugin library {} does not exist", path.display());
    }
    let header = lib_header_from_path(path).map_err(|e| library_error(path, e))?;
    let module = header
        .init_root_module::<PluginLibraryRef>()
        .map_err(|e| library_error(path, e))?;
    let entries = (module.entries())()
        .into_result()
        .map_err(|e| anyhow!("plugin library {}: {e}", path.display()))?;
    Ok(entries.into_vec())
}

/// A one-line message for a library that failed to load.
fn library_error(path: &Path, err: LibraryError) -> anyhow::Error {
    let p = path.display();
    match err {
        LibraryError::OpenError { err, .. } => {
            anyhow!("{p} could not be opened as a shared library: {err}")
        }
        LibraryError::GetSymbolError { .. } => anyhow!(
            "{p} is a shared library but not a fewshot plugin (it exports no fewshot root module)"
        ),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => anyhow!(
            "{p} was built against fewshot-sdk {actual_version}, but this fewshot uses fewshot-sdk {expected_version}; rebuild the plugin against fewshot-sdk {expected_version}"
        ),
        other => anyhow!("{p} cannot be loaded: {other}"),
    }
}
