//! The plugin registry: built-in plugins (registered with `inventory` in `fewshot-plugins`) and
//! plugin libraries loaded with abi_stable, behind one interface.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Result};
use fewshot_sdk::{
    abi_stable::{
        abi_stability::abi_checking::{check_layout_compatibility, AbiInstabilityErrors},
        library::{lib_header_from_path, LibraryError, RootModule, RootModuleError},
        sabi_types::{VersionNumber, VersionStrings},
        StableAbi,
    },
    ffi::{from_ffi, AnyPlugin, PluginLibraryRef, RuleBox, SamplerBox, SpaceBox, SplitterBox},
    PluginEntry, PluginKind, SDK_VERSION,
};

use super::abi_report::{self, Mismatch};

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
            Origin::Builtin => f.pad("built-in"),
            Origin::Library(path) => f.pad(&path.display().to_string()),
        }
    }
}

/// One plugin the registry knows.
pub struct Registered {
    /// The entry (name, description, parameters, constructor).
    pub entry: PluginEntry,
    /// Its kind.
    pub kind: PluginKind,
    /// Where it came from.
    pub origin: Origin,
}

impl Registered {
    /// How messages name the plugin: `<kind> `<name>` (<origin>)`.
    pub fn label(&self) -> String {
        format!("{} `{}` ({})", self.kind.name(), self.entry.name, self.origin)
    }
}

/// Every plugin available to this process.
pub struct Registry {
    plugins: Vec<Registered>,
}

/// The plugin name of a spec `name` or `name:key=value,...`.
pub fn spec_name(spec: &str) -> &str {
    spec.split_once(':').map_or(spec, |(name, _)| name).trim()
}

/// Adds `key=value` to a plugin spec `name` or `name:params`.
pub fn with_param(spec: &str, key: &str, value: &str) -> String {
    if spec.contains(':') {
        format!("{spec},{key}={value}")
    } else {
        format!("{spec}:{key}={value}")
    }
}

/// Whether a plugin spec `name:key=value,...` sets `key` (read with the SDK's parameter parser,
/// as the plugin reads it; a malformed spec sets nothing, and the plugin reports it).
pub fn has_param(spec: &str, key: &str) -> bool {
    spec.split_once(':')
        .and_then(|(_, params)| fewshot_sdk::Params::parse(params).ok())
        .is_some_and(|params| params.pairs().any(|(k, _)| k == key))
}

/// Name of the environment variable listing folders of plugin libraries.
pub const PLUGIN_PATH_VAR: &str = "FEWSHOT_PLUGIN_PATH";

/// A plugin library that could not be loaded: a short message a plugin author can act on, and,
/// for layout mismatches, abi_stable's full report (shown with `--verbose`).
#[derive(Debug)]
pub struct LoadError {
    /// One or two lines saying what is wrong and what to do.
    pub message: String,
    /// abi_stable's complete diagnostic, when it has one (often hundreds of lines).
    pub full_report: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.full_report.is_some() {
            f.write_str(" (--verbose shows abi_stable's full report)")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn new(message: String) -> Self {
        LoadError { message, full_report: None }
    }
}

impl Registry {
    /// The built-in plugins only.
    pub fn builtins() -> Result<Registry> {
        let mut registry = Registry { plugins: Vec::new() };
        for entry in fewshot_sdk::ffi::builtin_entries() {
            registry.add(entry, Origin::Builtin)?;
        }
        Ok(registry)
    }

    /// The built-ins, then every library in the folders of `FEWSHOT_PLUGIN_PATH`, then the
    /// libraries given with `--plugin`.
    pub fn load(libraries: &[PathBuf]) -> Result<Registry> {
        let mut registry = Registry::builtins()?;
        for path in plugin_path_libraries()? {
            registry.load_library(&path)?;
        }
        for path in libraries {
            registry.load_library(path)?;
        }
        Ok(registry)
    }

    /// Loads one plugin library and adds its plugins; returns the fewshot-sdk version it was
    /// built with.
    pub fn load_library(&mut self, path: &Path) -> Result<String> {
        let (module, sdk_version) = open_library(path)?;
        let entries = from_ffi((module.entries())())
            .map_err(|e| LoadError::new(format!("plugin library {}: {e}", path.display())))?;
        for entry in entries {
            self.add(entry, Origin::Library(path.to_path_buf()))?;
        }
        Ok(sdk_version)
    }

    fn add(&mut self, entry: PluginEntry, origin: Origin) -> Result<()> {
        let Some(kind) = entry.kind() else {
            bail!(
                "plugin `{}` from {origin} is of a kind this fewshot does not know (it was built \
                 with a newer fewshot-sdk than {SDK_VERSION}); upgrade fewshot",
                entry.name
            );
        };
        let name = entry.name.as_str();
        if name.is_empty() || name.contains(|c: char| c == ':' || c == ',' || c == '=' || c.is_whitespace()) {
            bail!(
                "{} plugin `{name}` from {origin} has an unusable name: names are not empty and \
                 contain no `:`, `,`, `=` or spaces (they are written `name:key=value,...`)",
                kind.name()
            );
        }
        if let Some(other) = self.find(kind, &entry.name) {
            bail!(
                "two {} plugins are named `{}`: one from {}, one from {}; remove one of them \
                 from --plugin / {PLUGIN_PATH_VAR}, or rename the plugin",
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

    /// The plugin of `kind` named `name`, if any.
    pub fn find(&self, kind: PluginKind, name: &str) -> Option<&Registered> {
        self.plugins.iter().find(|p| p.kind == kind && p.entry.name.as_str() == name)
    }

    /// Constructs a plugin from a spec `name` or `name:key=value,...`.
    pub fn make(&self, kind: PluginKind, spec: &str) -> Result<AnyPlugin> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.trim();
        let Some(found) = self.find(kind, name) else {
            let mut known: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.entry.name.as_str())
                .collect();
            if kind == PluginKind::Splitter {
                known.push(crate::proxy_split::NAME);
            }
            bail!("no {} plugin named `{name}` (available: {})", kind.name(), known.join(", "));
        };
        let made = from_ffi(found.entry.maker.make(params.into())).map_err(|e| anyhow!("{}: {e}", found.label()))?;
        made.into_enum().map_err(|_| anyhow!("{} made a plugin of a kind this fewshot does not know", found.label()))
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
        let listing = std::fs::read_dir(&dir).map_err(|e| {
            anyhow!("{PLUGIN_PATH_VAR} names {}, which cannot be read as a folder: {e}", dir.display())
        })?;
        let mut libs: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == std::env::consts::DLL_EXTENSION))
            .collect();
        libs.sort();
        found.extend(libs);
    }
    Ok(found)
}

/// Opens a plugin library: checks its fewshot-sdk version and the layout of every type that
/// crosses the boundary, then returns its root module and the SDK version it was built with.
fn open_library(path: &Path) -> Result<(PluginLibraryRef, String), LoadError> {
    let p = path.display();
    if !path.exists() {
        return Err(LoadError::new(format!("plugin library {p} does not exist")));
    }
    if path.is_dir() {
        return Err(LoadError::new(format!(
            "plugin library {p} is a folder; give the library file (lib<name>.{}) with --plugin, \
             or put the folder in {PLUGIN_PATH_VAR}",
            std::env::consts::DLL_EXTENSION
        )));
    }
    super::elf::check_complete(path)
        .map_err(|why| LoadError::new(format!("plugin library {p} cannot be loaded: {why}")))?;
    // The loader searches the system's library folders for a bare file name: name the file.
    let absolute = std::path::absolute(path)
        .map_err(|e| LoadError::new(format!("plugin library {p}: cannot resolve the path: {e}")))?;
    let header = lib_header_from_path(&absolute).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => LoadError::new(format!(
            "plugin library {p} could not be opened as a shared library: {}",
            abi_report::strip_path(&err.to_string(), &absolute)
        )),
        other => library_error(path, VersionStrings::new("?"), None, other),
    })?;
    let library_version = header.version_strings();
    check_sdk_version(path, library_version)?;
    let module = header.init_root_module::<PluginLibraryRef>().map_err(|e| {
        // abi_stable reports a layout mismatch as formatted text only: check again for the
        // structured errors the summary is made from.
        let layout_errors = header
            .layout()
            .and_then(|found| check_layout_compatibility(<PluginLibraryRef as StableAbi>::LAYOUT, found).err());
        library_error(path, library_version, layout_errors, e)
    })?;
    Ok((module, library_version.version.to_string()))
}

/// Refuses a library built against a fewshot-sdk of another release line before abi_stable
/// compares layouts: `0.x` versions must share the minor version, later ones the major version.
fn check_sdk_version(path: &Path, library: VersionStrings) -> Result<(), LoadError> {
    let host: VersionNumber = <PluginLibraryRef as RootModule>::VERSION_STRINGS
        .parsed()
        .expect("the SDK's own version parses");
    let Ok(lib) = library.parsed() else {
        return Err(LoadError::new(format!(
            "plugin library {} declares an unreadable fewshot-sdk version `{}`",
            path.display(),
            library.version
        )));
    };
    let same_line = if host.major == 0 {
        lib.major == 0 && lib.minor == host.minor
    } else {
        lib.major == host.major
    };
    if same_line {
        return Ok(());
    }
    let line = if host.major == 0 {
        format!("{}.{}.x", host.major, host.minor)
    } else {
        format!("{}.x", host.major)
    };
    let rule = if host.major == 0 { "same minor version" } else { "same major version" };
    Err(LoadError::new(format!(
        "plugin library {} was built against fewshot-sdk {}, but this fewshot uses fewshot-sdk \
         {SDK_VERSION} (plugins load only within the {rule}); rebuild the plugin against \
         fewshot-sdk {line}",
        path.display(),
        library.version
    )))
}

/// A message a plugin author can act on, for a library abi_stable refused.
fn library_error(
    path: &Path,
    library_version: VersionStrings,
    layout_errors: Option<AbiInstabilityErrors>,
    err: LibraryError,
) -> LoadError {
    let p = path.display();
    match err {
        LibraryError::OpenError { err, .. } => {
            LoadError::new(format!("plugin library {p} could not be opened as a shared library: {err}"))
        }
        LibraryError::GetSymbolError { .. } => LoadError::new(format!(
            "{p} is a shared library but not a fewshot plugin: it exports no fewshot root module \
             (a plugin crate calls fewshot_sdk::export_plugins! and is built as a cdylib)"
        )),
        LibraryError::InvalidAbiHeader(found) => LoadError::new(format!(
            "{p} was built with an incompatible abi_stable (ABI {}.{}; fewshot plugins use \
             abi_stable 0.11); rebuild it with abi_stable = \"=0.11.3\"",
            found.abi_major, found.abi_minor
        )),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::new(format!(
                "plugin library {p} was built against fewshot-sdk {actual_version}, but this \
                 fewshot uses fewshot-sdk {expected_version}; rebuild the plugin against \
                 fewshot-sdk {expected_version}"
            ))
        }
        LibraryError::ParseVersionError(e) => {
            LoadError::new(format!("plugin library {p} declares an unreadable version: {e}"))
        }
        LibraryError::AbiInstability(report) => {
            let host = SDK_VERSION;
            let library = library_version.version;
            let message = match layout_errors.as_ref().map(abi_report::summarize) {
                Some(Mismatch::Foreign { root, expected }) => format!(
                    "{p} is an abi_stable library, but not a fewshot plugin (its root module is \
                     `{root}`, a fewshot plugin's is `{expected}`)"
                ),
                Some(Mismatch::Differs(Some(difference))) => format!(
                    "plugin library {p} (built with fewshot-sdk {library}) does not match this \
                     fewshot (fewshot-sdk {host}): {difference}; rebuild the plugin against \
                     fewshot-sdk {host}"
                ),
                _ => format!(
                    "plugin library {p} (built with fewshot-sdk {library}) has type layouts that \
                     do not match this fewshot (fewshot-sdk {host}); rebuild the plugin against \
                     fewshot-sdk {host}"
                ),
            };
            LoadError { message, full_report: Some(report.to_string()) }
        }
        LibraryError::RootModule { err, .. } => {
            let why = match &err {
                RootModuleError::Unwound => "it panicked".to_string(),
                RootModuleError::Returned(e) => e.to_string(),
            };
            LoadError::new(format!("plugin library {p} failed to initialise its root module: {why}"))
        }
        other => LoadError {
            message: format!("plugin library {p} cannot be loaded"),
            full_report: Some(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_their_plugin_and_take_params() {
        assert_eq!(spec_name(" nb201 :C=8"), "nb201");
        assert_eq!(with_param("nb201", "activation", "tanh"), "nb201:activation=tanh");
        assert_eq!(with_param("nb201:C=8", "activation", "tanh"), "nb201:C=8,activation=tanh");
    }
}
