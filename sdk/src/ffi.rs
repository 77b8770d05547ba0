//! The ABI boundary: ABI-stable trait objects, plugin entries and the library root module.
//!
//! Plugin authors rarely touch this module: they implement the traits of [`crate::plugin`],
//! list them as [`PluginEntry`]s and export them with [`crate::export_plugins!`]. The host
//! calls the `*Box` objects below; every method returns `RResult` and runs under
//! [`crate::guard::call`], so a panic in plugin code comes back as an error.
//!
//! Evolution rules (see `docs/plugin-guide.md`): trait objects and the root module are prefix
//! types; new methods and fields are only ever appended, after the `last_prefix_field` marker.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait,
    sabi_types::{RMut, VersionStrings},
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    arch::{Arch, Slot},
    graph::Graph,
    guard::call,
    params::Params,
    plugin::{
        ArchDraw, ArchMetrics, CountingRule, Pick, PlanContext, Sampler, SearchSpace, SplitKey,
        Splitter, SubspaceLabel,
    },
};

/// Result type of every call across the boundary: the error is a readable message.
pub type FfiResult<T> = RResult<T, RString>;

/// An [`FfiResult`] as a standard `Result`, its error the message as a `String`: the one
/// conversion host and engine apply to what a `*Box` method returns (the plugin traits of
/// [`crate::plugin`] return `Result<_, String>` too). Code that reports with `anyhow` lifts the
/// message with `anyhow::Error::msg`.
pub fn from_ffi<T>(result: FfiResult<T>) -> Result<T, String> {
    result.into_result().map_err(RString::into_string)
}

/// ABI-stable search space (see [`SearchSpace`]).
#[sabi_trait]
pub trait FfiSearchSpace: Send + Sync {
    /// See [`SearchSpace::slots`].
    fn slots(&self) -> FfiResult<RVec<Slot>>;
    /// See [`SearchSpace::parse`].
    fn parse(&self, text: RStr<'_>) -> FfiResult<Arch>;
    /// See [`SearchSpace::format`].
    fn format(&self, arch: &Arch) -> FfiResult<RString>;
    /// See [`SearchSpace::validate`].
    fn validate(&self, arch: &Arch) -> FfiResult<()>;
    /// See [`SearchSpace::supernet_graph`].
    fn supernet_graph(&self) -> FfiResult<Graph>;
    /// See [`SearchSpace::subnet_graph`].
    fn subnet_graph(&self, arch: &Arch) -> FfiResult<Graph>;
    /// See [`SearchSpace::counting_graph`].
    fn counting_graph(&self) -> FfiResult<Graph>;
    /// See [`SearchSpace::default_groups`].
    fn default_groups(&self) -> FfiResult<RString>;
    /// See [`SearchSpace::slots_in_series`].
    #[sabi(last_prefix_field)]
    fn slots_in_series(&self) -> FfiResult<bool>;
}

/// ABI-stable counting rule (see [`CountingRule`]).
#[sabi_trait]
pub trait FfiCountingRule: Send + Sync {
    /// See [`CountingRule::count`]: `graph` seen through `arch`.
    fn count(&self, graph: &Graph, arch: RSlice<'_, u32>) -> FfiResult<u32>;
    /// See [`CountingRule::additive_in_series`].
    #[sabi(last_prefix_field)]
    fn additive_in_series(&self) -> FfiResult<bool>;
}

/// ABI-stable splitter (see [`Splitter`]).
#[sabi_trait]
pub trait FfiSplitter: Send + Sync {
    /// See [`Splitter::key`].
    fn key(&self) -> FfiResult<SplitKey>;
    /// See [`Splitter::prepare`].
    fn prepare(&mut self, ctx: &PlanContext) -> FfiResult<RVec<SubspaceLabel>>;
    /// See [`Splitter::assign`].
    #[sabi(last_prefix_field)]
    fn assign(&self, arch: &Arch, metrics: &ArchMetrics) -> FfiResult<u32>;
}

/// ABI-stable host handle a sampler draws through (see [`ArchDraw`]). Implemented by the host.
#[sabi_trait]
pub trait FfiArchDraw {
    /// See [`ArchDraw::subspaces`].
    fn subspaces(&self) -> u32;
    /// See [`ArchDraw::subspace_size`].
    fn subspace_size(&self, subspace: u32) -> f64;
    /// See [`ArchDraw::option_counts`].
    fn option_counts(&self) -> RVec<u32>;
    /// See [`ArchDraw::draw`].
    fn draw(&mut self, subspace: u32) -> FfiResult<Arch>;
    /// See [`ArchDraw::draw_any`].
    fn draw_any(&mut self) -> FfiResult<Pick>;
    /// See [`ArchDraw::subspace_of`].
    fn subspace_of(&self, arch: &Arch) -> FfiResult<ROption<u32>>;
    /// See [`ArchDraw::next_u64`].
    #[sabi(last_prefix_field)]
    fn next_u64(&mut self) -> u64;
}

/// ABI-stable sampler (see [`Sampler`]).
#[sabi_trait]
pub trait FfiSampler: Send + Sync {
    /// See [`Sampler::step`].
    fn step(&mut self, draw: FfiArchDraw_TO<'_, RMut<'_, ()>>) -> FfiResult<RVec<Pick>>;
    /// See [`Sampler::save_state`].
    fn save_state(&self) -> FfiResult<RString>;
    /// See [`Sampler::load_state`].
    #[sabi(last_prefix_field)]
    fn load_state(&mut self, state: RStr<'_>) -> FfiResult<()>;
}

/// A search space across the boundary.
pub type SpaceBox = FfiSearchSpace_TO<'static, RBox<()>>;
/// A counting rule across the boundary.
pub type RuleBox = FfiCountingRule_TO<'static, RBox<()>>;
/// A splitter across the boundary.
pub type SplitterBox = FfiSplitter_TO<'static, RBox<()>>;
/// A sampler across the boundary.
pub type SamplerBox = FfiSampler_TO<'static, RBox<()>>;

/// The kind of a plugin.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[sabi(kind(WithNonExhaustive(size = 4, align = 4, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum PluginKind {
    /// A search space.
    Space,
    /// A counting rule.
    Rule,
    /// A splitting criterion.
    Splitter,
    /// A training sampler.
    Sampler,
}

impl PluginKind {
    /// Every kind this SDK version knows.
    pub const ALL: [PluginKind; 4] =
        [PluginKind::Space, PluginKind::Rule, PluginKind::Splitter, PluginKind::Sampler];

    /// Lower-case name: `space`, `rule`, `splitter`, `sampler`.
    pub fn name(&self) -> &'static str {
        match self {
            PluginKind::Space => "space",
            PluginKind::Rule => "rule",
            PluginKind::Splitter => "splitter",
            PluginKind::Sampler => "sampler",
        }
    }
}

/// A constructed plugin of any kind.
#[repr(u8)]
#[derive(StableAbi)]
#[sabi(kind(WithNonExhaustive(size = [usize; 8], align = usize, traits())))]
#[non_exhaustive]
pub enum AnyPlugin {
    /// A search space.
    Space(SpaceBox),
    /// A counting rule.
    Rule(RuleBox),
    /// A splitter.
    Splitter(SplitterBox),
    /// A sampler.
    Sampler(SamplerBox),
}

/// Constructs one plugin from its parameter string.
#[sabi_trait]
pub trait FfiMaker: Send + Sync {
    /// The kind of plugin this makes.
    fn kind(&self) -> PluginKind_NE;
    /// Builds the plugin from `key=value,...` parameters.
    #[sabi(last_prefix_field)]
    fn make(&self, params: RStr<'_>) -> FfiResult<AnyPlugin_NE>;
}

/// One plugin a library (or the built-in set) offers.
#[repr(C)]
#[derive(StableAbi)]
pub struct PluginEntry {
    /// Name users select it by, e.g. `nb201` or `enn`.
    pub name: RString,
    /// One-line description.
    pub description: RString,
    /// The parameters it accepts, e.g. `C=16, N=5, activation=relu`.
    pub parameters: RString,
    /// The constructor.
    pub maker: FfiMaker_TO<'static, RBox<()>>,
}

struct Maker<P> {
    kind: PluginKind,
    name: &'static str,
    build: fn(&Params) -> Result<P, String>,
    wrap: fn(P) -> AnyPlugin,
}

impl<P: 'static> FfiMaker for Maker<P> {
    fn kind(&self) -> PluginKind_NE {
        PluginKind_NE::new(self.kind)
    }

    fn make(&self, params: RStr<'_>) -> FfiResult<AnyPlugin_NE> {
        let what = format!("constructing {} `{}`", self.kind.name(), self.name);
        call(&what, || {
            let params = Params::parse(params.as_str())?;
            let plugin = (self.build)(&params)?;
            params.finish()?;
            Ok(AnyPlugin_NE::new((self.wrap)(plugin)))
        })
    }
}

impl PluginEntry {
    fn new<P: 'static>(
        kind: PluginKind,
        name: &'static str,
        description: &str,
        parameters: &str,
        build: fn(&Params) -> Result<P, String>,
        wrap: fn(P) -> AnyPlugin,
    ) -> Self {
        PluginEntry {
            name: name.into(),
            description: description.into(),
            parameters: parameters.into(),
            maker: FfiMaker_TO::from_value(Maker { kind, name, build, wrap }, abi_stable::sabi_trait::TD_Opaque),
        }
    }

    /// An entry for a search space.
    pub fn space<S: SearchSpace>(
        name: &'static str,
        description: &str,
        parameters: &str,
        build: fn(&Params) -> Result<S, String>,
    ) -> Self {
        Self::new(PluginKind::Space, name, description, parameters, build, |s| {
            AnyPlugin::Space(SpaceBox::from_value(SpaceAdapter(s), abi_stable::sabi_trait::TD_Opaque))
        })
    }

    /// An entry for a counting rule.
    pub fn rule<R: CountingRule>(
        name: &'static str,
        description: &str,
        parameters: &str,
        build: fn(&Params) -> Result<R, String>,
    ) -> Self {
        Self::new(PluginKind::Rule, name, description, parameters, build, |r| {
            AnyPlugin::Rule(RuleBox::from_value(RuleAdapter(r), abi_stable::sabi_trait::TD_Opaque))
        })
    }

    /// An entry for a splitter.
    pub fn splitter<S: Splitter>(
        name: &'static str,
        description: &str,
        parameters: &str,
        build: fn(&Params) -> Result<S, String>,
    ) -> Self {
        Self::new(PluginKind::Splitter, name, description, parameters, build, |s| {
            AnyPlugin::Splitter(splitter_box(s))
        })
    }

    /// An entry for a sampler.
    pub fn sampler<S: Sampler>(
        name: &'static str,
        description: &str,
        parameters: &str,
        build: fn(&Params) -> Result<S, String>,
    ) -> Self {
        Self::new(PluginKind::Sampler, name, description, parameters, build, |s| {
            AnyPlugin::Sampler(SamplerBox::from_value(SamplerAdapter(s), abi_stable::sabi_trait::TD_Opaque))
        })
    }

    /// The kind of plugin this entry makes (`None` for a kind added in a newer SDK).
    pub fn kind(&self) -> Option<PluginKind> {
        self.maker.kind().as_enum().ok().copied()
    }
}

/// A splitter made in this process (not loaded from a library) as the box the plan takes.
pub fn splitter_box<S: Splitter>(splitter: S) -> SplitterBox {
    SplitterBox::from_value(SplitterAdapter(splitter), abi_stable::sabi_trait::TD_Opaque)
}

struct SpaceAdapter<S>(S);

impl<S: SearchSpace> FfiSearchSpace for SpaceAdapter<S> {
    fn slots(&self) -> FfiResult<RVec<Slot>> {
        call("space slots", || Ok(self.0.slots().into()))
    }
    fn parse(&self, text: RStr<'_>) -> FfiResult<Arch> {
        call("space parse", || self.0.parse(text.as_str()))
    }
    fn format(&self, arch: &Arch) -> FfiResult<RString> {
        call("space format", || Ok(self.0.format(arch).into()))
    }
    fn validate(&self, arch: &Arch) -> FfiResult<()> {
        call("space validate", || self.0.validate(arch))
    }
    fn supernet_graph(&self) -> FfiResult<Graph> {
        call("space supernet graph", || Ok(self.0.supernet_graph()))
    }
    fn subnet_graph(&self, arch: &Arch) -> FfiResult<Graph> {
        call("space subnet graph", || self.0.subnet_graph(arch))
    }
    fn counting_graph(&self) -> FfiResult<Graph> {
        call("space counting graph", || Ok(self.0.counting_graph()))
    }
    fn default_groups(&self) -> FfiResult<RString> {
        call("space default groups", || Ok(self.0.default_groups().into()))
    }
    fn slots_in_series(&self) -> FfiResult<bool> {
        call("space slots_in_series", || Ok(self.0.slots_in_series()))
    }
}

struct RuleAdapter<R>(R);

impl<R: CountingRule> FfiCountingRule for RuleAdapter<R> {
    fn count(&self, graph: &Graph, arch: RSlice<'_, u32>) -> FfiResult<u32> {
        call("rule count", || self.0.count(graph.view(arch.as_slice())))
    }
    fn additive_in_series(&self) -> FfiResult<bool> {
        call("rule additive_in_series", || Ok(self.0.additive_in_series()))
    }
}

struct SplitterAdapter<S>(S);

impl<S: Splitter> FfiSplitter for SplitterAdapter<S> {
    fn key(&self) -> FfiResult<SplitKey> {
        call("splitter key", || Ok(self.0.key()))
    }
    fn prepare(&mut self, ctx: &PlanContext) -> FfiResult<RVec<SubspaceLabel>> {
        call("splitter prepare", || self.0.prepare(ctx).map(RVec::from))
    }
    fn assign(&self, arch: &Arch, metrics: &ArchMetrics) -> FfiResult<u32> {
        call("splitter assign", || self.0.assign(arch, metrics))
    }
}

struct SamplerAdapter<S>(S);

impl<S: Sampler> FfiSampler for SamplerAdapter<S> {
    fn step(&mut self, mut draw: FfiArchDraw_TO<'_, RMut<'_, ()>>) -> FfiResult<RVec<Pick>> {
        call("sampler step", || {
            let mut handle = DrawFromHost(&mut draw);
            self.0.step(&mut handle).map(RVec::from)
        })
    }
    fn save_state(&self) -> FfiResult<RString> {
        call("sampler save_state", || Ok(self.0.save_state().into()))
    }
    fn load_state(&mut self, state: RStr<'_>) -> FfiResult<()> {
        call("sampler load_state", || self.0.load_state(state.as_str()))
    }
}

/// The plugin side of the host's draw handle: the ABI object seen as an [`ArchDraw`].
struct DrawFromHost<'a, 'l, 'r>(&'a mut FfiArchDraw_TO<'l, RMut<'r, ()>>);

impl ArchDraw for DrawFromHost<'_, '_, '_> {
    fn subspaces(&self) -> u32 {
        self.0.subspaces()
    }
    fn subspace_size(&self, subspace: u32) -> f64 {
        self.0.subspace_size(subspace)
    }
    fn option_counts(&self) -> Vec<u32> {
        self.0.option_counts().into_vec()
    }
    fn draw(&mut self, subspace: u32) -> Result<Arch, String> {
        from_ffi(self.0.draw(subspace))
    }
    fn draw_any(&mut self) -> Result<Pick, String> {
        from_ffi(self.0.draw_any())
    }
    fn subspace_of(&self, arch: &Arch) -> Result<Option<u32>, String> {
        from_ffi(self.0.subspace_of(arch)).map(ROption::into_option)
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The host side of the draw handle: any [`ArchDraw`] as the ABI object a sampler receives.
pub struct DrawForPlugin<'a>(pub &'a mut dyn ArchDraw);

impl FfiArchDraw for DrawForPlugin<'_> {
    fn subspaces(&self) -> u32 {
        self.0.subspaces()
    }
    fn subspace_size(&self, subspace: u32) -> f64 {
        self.0.subspace_size(subspace)
    }
    fn option_counts(&self) -> RVec<u32> {
        self.0.option_counts().into()
    }
    fn draw(&mut self, subspace: u32) -> FfiResult<Arch> {
        self.0.draw(subspace).map_err(RString::from).into()
    }
    fn draw_any(&mut self) -> FfiResult<Pick> {
        self.0.draw_any().map_err(RString::from).into()
    }
    fn subspace_of(&self, arch: &Arch) -> FfiResult<ROption<u32>> {
        self.0.subspace_of(arch).map(ROption::from).map_err(RString::from).into()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The root module every plugin library exports (through [`crate::export_plugins!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibraryRef)))]
#[sabi(missing_field(panic))]
pub struct PluginLibrary {
    /// The fewshot-sdk version the library was built with.
    pub sdk_version: RStr<'static>,
    /// The plugins the library offers.
    #[sabi(last_prefix_field)]
    pub entries: extern "C" fn() -> FfiResult<RVec<PluginEntry>>,
}

impl RootModule for PluginLibraryRef {
    declare_root_module_statics! {PluginLibraryRef}
    const BASE_NAME: &'static str = "fewshot_plugin";
    const NAME: &'static str = "fewshot_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Runs a library's entry list under the panic guard (used by [`crate::export_plugins!`]).
pub fn guarded_entries(entries: fn() -> Vec<PluginEntry>) -> FfiResult<RVec<PluginEntry>> {
    call("listing the library's plugins", || Ok(entries().into()))
}

/// A built-in plugin, registered with `inventory` by the crate that defines it
/// (see [`crate::register_builtin!`]).
pub struct BuiltinPlugin {
    /// Makes the entry.
    pub entry: fn() -> PluginEntry,
}

inventory::collect!(BuiltinPlugin);

/// Every built-in plugin registered in this process.
pub fn builtin_entries() -> Vec<PluginEntry> {
    inventory::iter::<BuiltinPlugin>
        .into_iter()
        .map(|b| (b.entry)())
        .collect()
}
