//! Evolutionary architecture search (SPOS style) and its random-search baseline, resumable.
//!
//! The search knows nothing about search spaces or supernets: an architecture is one option
//! index per decision slot, candidates come from a [`Candidates`] implementation (random
//! architectures and the legality test: valid, not trash, within the FLOPs/params limits at full
//! width) and scores from a [`Fitness`] implementation (usually the supernet accuracy of each
//! architecture on the validation split, higher is better).
//!
//! # Algorithm ([`Strategy::Evolution`], reference §5.1)
//!
//! Generation 0 is `population` random candidates. Each of the `generations` later generations
//! is built from the `top_k` best architectures evaluated so far:
//!
//! - up to `mutations` children of a random top-k parent, each position redrawn uniformly from
//!   all of its options with probability `mutation_prob`;
//! - up to `crossovers` children of two random top-k parents (possibly the same one), each
//!   position taken from the first parent with probability `crossover_prob`, else the second;
//! - random candidates until the generation holds `population` architectures.
//!
//! A candidate is accepted only if it was never evaluated before (the visited set: nothing is
//! scored twice) and is legal; others are skipped, never repaired. Each of the three generators
//! gives up after `tries_factor` × its target draws, so a small or tightly constrained space ends
//! the search early instead of looping: a generation that finds no new candidate finishes it.
//! Each generation is scored in one batch ([`Fitness::evaluate`]). The total number of
//! evaluations is at most `population × (generations + 1)` ([`SearchConfig::budget`]).
//!
//! [`Strategy::Random`] spends the same budget on random legal candidates only, generation by
//! generation, for comparison.
//!
//! Fitness is higher-is-better; equal fitness is ordered by the architecture's option indices
//! (lexicographically smaller first), so rankings are deterministic.
//!
//! # Resuming
//!
//! [`SearchState`] holds everything: settings, seed, the random generator's state, the
//! generation counter, the current population and top-k, and the history of every evaluated
//! architecture with its score (which is the visited set). Save it after each generation
//! ([`SearchState::save`], atomic JSON); a search loaded with [`SearchState::load`] or
//! [`SearchState::open`] continues exactly as the uninterrupted one would, provided the
//! [`Fitness`] is deterministic.
//!
//! ```text
//! let mut state = SearchState::open(&path, config, seed, candidates.option_counts())?;
//! while !state.is_finished() {
//!     state.run_generation(&mut candidates, &mut fitness)?;
//!     state.save(&path)?;
//! }
//! let best = state.best();
//! ```

use std::{
    cmp::Ordering,
    collections::HashSet,
    fmt, fs,
    path::{Path, PathBuf},
    str::FromStr,
};

use fewshot_sdk::arch::{check_choices, ArchMismatch};
use serde::{Deserialize, Serialize};

use crate::{util::files::write_atomic, util::rng::Rng};

/// Where candidate architectures come from.
pub trait Candidates {
    /// The number of options of each decision slot; an architecture is one index per slot,
    /// each below its slot's count.
    fn option_counts(&self) -> Vec<u32>;
    /// A random architecture, drawn with `rng` only (it need not be legal: the search checks).
    fn random(&mut self, rng: &mut Rng) -> Result<Vec<u32>, String>;
    /// Whether the search may evaluate `arch`: a valid architecture, not trash, and within the
    /// cost limits (FLOPs, params) of the full-width network.
    fn legal(&mut self, arch: &[u32]) -> Result<bool, String>;
}

/// How good architectures are.
pub trait Fitness {
    /// One finite score per architecture, in order; higher is better (e.g. supernet accuracy
    /// in percent). The search calls it once per generation with all new candidates.
    fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String>;
}

/// How new candidates are proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Mutation and crossover of the top-k, filled up with random candidates.
    Evolution,
    /// Random candidates only, with the same budget.
    Random,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Strategy::Evolution => "evolution",
            Strategy::Random => "random",
        })
    }
}

impl FromStr for Strategy {
    type Err = SearchError;

    fn from_str(text: &str) -> Result<Strategy, SearchError> {
        match text {
            "evolution" => Ok(Strategy::Evolution),
            "random" => Ok(Strategy::Random),
            other => Err(SearchError::UnknownStrategy(other.to_string())),
        }
    }
}

/// Search settings; [`Default`] gives the reference's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Evolution or random search.
    pub strategy: Strategy,
    /// Candidates per generation (P = 50).
    pub population: usize,
    /// Generations after the initial random one (G = 20).
    pub generations: usize,
    /// Parents kept for mutation and crossover (10).
    pub top_k: usize,
    /// Mutated children per generation (25).
    pub mutations: usize,
    /// Probability that a mutation redraws a position (0.1).
    pub mutation_prob: f64,
    /// Crossover children per generation (25).
    pub crossovers: usize,
    /// Probability that a crossover child takes a position from its first parent (0.5).
    pub crossover_prob: f64,
    /// Each generator gives up after this many draws per wanted candidate (10).
    pub tries_factor: usize,
}

impl Default for SearchConfig {
    fn default() -> SearchConfig {
        SearchConfig {
            strategy: Strategy::Evolution,
            population: 50,
            generations: 20,
            top_k: 10,
            mutations: 25,
            mutation_prob: 0.1,
            crossovers: 25,
            crossover_prob: 0.5,
            tries_factor: 10,
        }
    }
}

impl SearchConfig {
    /// The most evaluations the search can make: `population × (generations + 1)`.
    pub fn budget(&self) -> usize {
        self.population * (self.generations + 1)
    }

    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<(), SearchError> {
        let fail = |message: String| Err(SearchError::Config(message));
        if self.population == 0 {
            return fail("the population must hold at least one candidate".into());
        }
        if self.top_k == 0 {
            return fail("top-k must be at least 1".into());
        }
        if self.tries_factor == 0 {
            return fail("the tries factor must be at least 1".into());
        }
        if self.mutations + self.crossovers > self.population {
            return fail(format!(
                "mutations ({}) + crossovers ({}) exceed the population ({})",
                self.mutations, self.crossovers, self.population
            ));
        }
        for (name, p) in [("mutation", self.mutation_prob), ("crossover", self.crossover_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return fail(format!("the {name} probability must lie in [0, 1], not {p}"));
            }
        }
        Ok(())
    }
}

/// Errors of the search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Invalid settings.
    #[error("invalid search settings: {0}")]
    Config(String),
    /// A strategy name other than `evolution` and `random`.
    #[error("unknown search strategy '{0}' (expected evolution or random)")]
    UnknownStrategy(String),
    /// [`Candidates`] failed or returned a malformed architecture.
    #[error("drawing search candidates failed: {0}")]
    Candidates(String),
    /// [`Fitness`] failed or returned malformed scores.
    #[error("scoring search candidates failed: {0}")]
    Fitness(String),
    /// A saved state is unreadable, inconsistent or was made with other settings.
    #[error("{}: {message}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a state file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The state file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// One evaluated architecture (a row of the search history).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluated {
    /// The generation that proposed it (0 = the initial random population).
    pub generation: usize,
    /// One option index per slot.
    pub arch: Vec<u32>,
    /// Its score; higher is better.
    pub fitness: f64,
}

/// Best first: higher fitness, then the lexicographically smaller architecture.
fn best_first(a: &Evaluated, b: &Evaluated) -> Ordering {
    b.fitness.total_cmp(&a.fitness).then_with(|| a.arch.cmp(&b.arch))
}

/// The version of the saved state's layout.
const STATE_FORMAT: u32 = 1;

/// The complete, serialisable state of a search (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    format: u32,
    config: SearchConfig,
    seed: u64,
    option_counts: Vec<u32>,
    /// Generations completed so far, i.e. the number of the next one.
    next_generation: usize,
    finished: bool,
    rng: Rng,
    /// Indices into `history` of the latest generation.
    population: Vec<usize>,
    /// Indices into `history` of the best `top_k` so far, best first.
    top_k: Vec<usize>,
    /// Every evaluated architecture, in evaluation order.
    history: Vec<Evaluated>,
}

/// The architectures evaluated so far plus those accepted in the generation being built.
struct Generation<'a, C: Candidates> {
    candidates: &'a mut C,
    option_counts: &'a [u32],
    seen: HashSet<Vec<u32>>,
    fresh: Vec<Vec<u32>>,
}

impl<C: Candidates> Generation<'_, C> {
    /// Accepts `arch` if unseen and legal.
    fn offer(&mut self, arch: Vec<u32>) -> Result<bool, SearchError> {
        if self.seen.contains(&arch) || !self.candidates.legal(&arch).map_err(SearchError::Candidates)? {
            return Ok(false);
        }
        self.seen.insert(arch.clone());
        self.fresh.push(arch);
        Ok(true)
    }

    /// Calls `propose` up to `tries_factor × wanted` times until `wanted` candidates are accepted.
    fn generate(
        &mut self,
        wanted: usize,
        tries_factor: usize,
        rng: &mut Rng,
        mut propose: impl FnMut(&mut Self, &mut Rng) -> Result<Vec<u32>, SearchError>,
    ) -> Result<(), SearchError> {
        let mut accepted = 0;
        for _ in 0..wanted * tries_factor {
            if accepted == wanted {
                break;
            }
            let arch = propose(self, rng)?;
            accepted += usize::from(self.offer(arch)?);
        }
        Ok(())
    }

    fn random(&mut self, rng: &mut Rng) -> Result<Vec<u32>, SearchError> {
        let arch = self.candidates.random(rng).map_err(SearchError::Candidates)?;
        check_arch(&arch, self.option_counts).map_err(|e| SearchError::Candidates(arch_mismatch(&arch, e)))?;
        Ok(arch)
    }
}

/// Whether `arch` has one in-range option index per slot ([`check_choices`]).
fn check_arch(arch: &[u32], option_counts: &[u32]) -> Result<(), ArchMismatch> {
    check_choices(arch, option_counts.iter().copied())
}

/// The search's wording of an architecture that does not fit the slots.
fn arch_mismatch(arch: &[u32], e: ArchMismatch) -> String {
    match e {
        ArchMismatch::Length { choices, slots } => {
            format!("architecture {arch:?} has {choices} positions, the space has {slots}")
        }
        ArchMismatch::Option { slot, options, choice } => {
            format!("architecture {arch:?}: option {choice} of slot {slot} is out of range (slot has {options})")
        }
    }
}

/// The settings that differ, as `name old, now new` (e.g. `generations 4, now 2`).
fn settings_diff(old: &SearchConfig, new: &SearchConfig) -> String {
    let as_map = |c: &SearchConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => unreachable!("search settings serialise to an object"),
    };
    let (old, new) = (as_map(old), as_map(new));
    let changed: Vec<String> = old
        .iter()
        .filter(|(key, value)| new.get(*key) != Some(value))
        .map(|(key, value)| format!("{key} {value}, now {}", new.get(key).unwrap_or(&serde_json::Value::Null)))
        .collect();
    changed.join("; ")
}

impl SearchState {
    /// A new search over architectures with these per-slot option counts; all randomness comes
    /// from `Rng::stream(seed, "search")`.
    pub fn new(config: SearchConfig, seed: u64, option_counts: Vec<u32>) -> Result<SearchState, SearchError> {
        config.validate()?;
        if option_counts.is_empty() || option_counts.contains(&0) {
            return Err(SearchError::Config(format!("every slot needs at least one option, got {option_counts:?}")));
        }
        Ok(SearchState {
            format: STATE_FORMAT,
            config,
            seed,
            option_counts,
            next_generation: 0,
            finished: false,
            rng: Rng::stream(seed, "search"),
            population: Vec::new(),
            top_k: Vec::new(),
            history: Vec::new(),
        })
    }

    /// Loads a state saved by [`SearchState::save`], checking that it is consistent.
    pub fn load(path: &Path) -> Result<SearchState, SearchError> {
        let text = fs::read_to_string(path).map_err(|source| SearchError::Io { path: path.into(), source })?;
        let invalid = |message: String| SearchError::State { path: path.into(), message };
        let state: SearchState =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not a search state: {e}")))?;
        if let Some(why) = state.inconsistency() {
            return Err(invalid(format!("corrupt search state: {why}")));
        }
        Ok(state)
    }

    /// Resumes the search saved at `path` if the file exists (refusing one made with other
    /// settings, seed or space), else starts a new one.
    pub fn open(path: &Path, config: SearchConfig, seed: u64, option_counts: Vec<u32>) -> Result<SearchState, SearchError> {
        if !path.exists() {
            return SearchState::new(config, seed, option_counts);
        }
        let state = SearchState::load(path)?;
        let mismatch = if state.config != config {
            Some(format!("settings {}", settings_diff(&state.config, &config)))
        } else if state.seed != seed {
            Some(format!("seed {}, now {seed}", state.seed))
        } else if state.option_counts != option_counts {
            Some(format!("a space with option counts {:?}, now {option_counts:?}", state.option_counts))
        } else {
            None
        };
        match mismatch {
            Some(what) => Err(SearchError::State {
                path: path.into(),
                message: format!(
                    "this search was started with {what}; resume with the same ones, or discard the saved search and start afresh (`fewshot search --restart`)"
                ),
            }),
            None => Ok(state),
        }
    }

    /// Saves the state atomically as JSON.
    pub fn save(&self, path: &Path) -> Result<(), SearchError> {
        let json = serde_json::to_string(self).expect("search state serialises");
        write_atomic(path, json.as_bytes()).map_err(|source| SearchError::Io { path: path.into(), source })
    }

    /// What makes a loaded state inconsistent, if anything.
    fn inconsistency(&self) -> Option<String> {
        if self.format != STATE_FORMAT {
            return Some(format!("layout version {} (this build reads {STATE_FORMAT})", self.format));
        }
        if let Err(e) = self.config.validate() {
            return Some(e.to_string());
        }
        let mut seen = HashSet::new();
        for row in &self.history {
            if let Err(e) = check_arch(&row.arch, &self.option_counts) {
                return Some(arch_mismatch(&row.arch, e));
            }
            if !row.fitness.is_finite() {
                return Some(format!("architecture {:?} has fitness {}", row.arch, row.fitness));
            }
            if !seen.insert(&row.arch) {
                return Some(format!("architecture {:?} appears twice in the history", row.arch));
            }
        }
        let n = self.history.len();
        if self.population.iter().chain(&self.top_k).any(|&i| i >= n) || self.top_k.len() > self.config.top_k {
            return Some("population or top-k refers past the history".into());
        }
        None
    }

    /// Runs one generation: proposes new candidates, scores them in one batch, updates the
    /// top-k. Returns the number of architectures evaluated. When no new legal candidate can be
    /// found, or the last generation has run, the search is finished. On error the state is
    /// unchanged.
    pub fn run_generation<C: Candidates, F: Fitness + ?Sized>(&mut self, candidates: &mut C, fitness: &mut F) -> Result<usize, SearchError> {
        if self.finished {
            return Ok(0);
        }
        let option_counts = candidates.option_counts();
        if option_counts != self.option_counts {
            return Err(SearchError::Candidates(format!(
                "the space has option counts {option_counts:?}, but this search was started with {:?}",
                self.option_counts
            )));
        }
        let config = self.config.clone();
        let mut rng = self.rng.clone();
        let mut generation = Generation {
            candidates,
            option_counts: &option_counts,
            seen: self.history.iter().map(|row| row.arch.clone()).collect(),
            fresh: Vec::new(),
        };
        if self.next_generation > 0 && config.strategy == Strategy::Evolution {
            let parents: Vec<Vec<u32>> = self.top_k.iter().map(|&i| self.history[i].arch.clone()).collect();
            let pick = |rng: &mut Rng| &parents[rng.below(parents.len() as u64) as usize];
            generation.generate(config.mutations, config.tries_factor, &mut rng, |g, rng| {
                let parent = pick(rng);
                Ok(parent
                    .iter()
                    .zip(g.option_counts)
                    .map(|(&option, &count)| {
                        if rng.chance(config.mutation_prob) { rng.below(count as u64) as u32 } else { option }
                    })
                    .collect())
            })?;
            generation.generate(config.crossovers, config.tries_factor, &mut rng, |_, rng| {
                let (first, second) = (pick(rng), pick(rng));
                Ok(first
                    .iter()
                    .zip(second)
                    .map(|(&a, &b)| if rng.chance(config.crossover_prob) { a } else { b })
                    .collect())
            })?;
        }
        let wanted = config.population - generation.fresh.len();
        generation.generate(wanted, config.tries_factor, &mut rng, |g, rng| g.random(rng))?;

        let fresh = generation.fresh;
        if fresh.is_empty() {
            self.finished = true;
            self.rng = rng;
            return Ok(0);
        }
        let scores = fitness.evaluate(&fresh).map_err(SearchError::Fitness)?;
        if scores.len() != fresh.len() {
            return Err(SearchError::Fitness(format!("{} scores for {} architectures", scores.len(), fresh.len())));
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(SearchError::Fitness(format!("architecture {:?} scored {}", fresh[i], scores[i])));
        }

        let start = self.history.len();
        let evaluated = fresh.len();
        self.history.extend(fresh.into_iter().zip(scores).map(|(arch, fitness)| Evaluated {
            generation: self.next_generation,
            arch,
            fitness,
        }));
        self.population = (start..self.history.len()).collect();
        let mut best: Vec<usize> = self.top_k.iter().copied().chain(start..self.history.len()).collect();
        best.sort_by(|&a, &b| best_first(&self.history[a], &self.history[b]));
        best.truncate(config.top_k);
        self.top_k = best;
        self.rng = rng;
        self.next_generation += 1;
        self.finished = self.next_generation > config.generations;
        Ok(evaluated)
    }

    /// Runs the remaining generations, saving the state to `checkpoint` (when given) after each.
    pub fn run<C: Candidates, F: Fitness>(
        &mut self,
        candidates: &mut C,
        fitness: &mut F,
        checkpoint: Option<&Path>,
    ) -> Result<(), SearchError> {
        while !self.finished {
            self.run_generation(candidates, fitness)?;
            if let Some(path) = checkpoint {
                self.save(path)?;
            }
        }
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The per-slot option counts of the space searched.
    pub fn option_counts(&self) -> &[u32] {
        &self.option_counts
    }

    /// Whether the search is over (all generations run, or the space exhausted).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The number of generations run so far (generation 0 included).
    pub fn completed_generations(&self) -> usize {
        self.next_generation
    }

    /// Every evaluated architecture in evaluation order, with its generation and fitness.
    pub fn history(&self) -> &[Evaluated] {
        &self.history
    }

    /// The latest generation's architectures.
    pub fn population(&self) -> Vec<&Evaluated> {
        self.population.iter().map(|&i| &self.history[i]).collect()
    }

    /// The best `top_k` architectures so far, best first.
    pub fn top_k(&self) -> Vec<&Evaluated> {
        self.top_k.iter().map(|&i| &self.history[i]).collect()
    }

    /// All evaluated architectures, best first.
    pub fn ranked(&self) -> Vec<&Evaluated> {
        let mut all: Vec<&Evaluated> = self.history.iter().collect();
        all.sort_by(|a, b| best_first(a, b));
        all
    }

    /// The best architecture so far.
    pub fn best(&self) -> Option<&Evaluated> {
        self.top_k.first().map(|&i| &self.history[i])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A space with `counts` options per slot; legal when the option sum is at most `max_sum`
    /// (a stand-in for a FLOPs limit).
    struct Space {
        counts: Vec<u32>,
        max_sum: Option<u32>,
    }

    impl Candidates for Space {
        fn option_counts(&self) -> Vec<u32> {
            self.counts.clone()
        }
        fn random(&mut self, rng: &mut Rng) -> Result<Vec<u32>, String> {
            Ok(self.counts.iter().map(|&c| rng.below(c as u64) as u32).collect())
        }
        fn legal(&mut self, arch: &[u32]) -> Result<bool, String> {
            Ok(self.max_sum.is_none_or(|limit| arch.iter().sum::<u32>() <= limit))
        }
    }

    /// Fitness = Σ weightᵢ·optionᵢ plus a deterministic per-architecture jitter below the weight
    /// step, counting how often each architecture is scored.
    struct Weighted {
        weights: Vec<f64>,
        scored: HashMap<Vec<u32>, usize>,
        calls: usize,
    }

    impl Weighted {
        fn new(weights: Vec<f64>) -> Weighted {
            Weighted { weights, scored: HashMap::new(), calls: 0 }
        }
        fn value(&self, arch: &[u32]) -> f64 {
            let hash = arch.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &o| (h ^ o as u64).wrapping_mul(0x0100_0000_01B3));
            let jitter = (hash % 1000) as f64 * 1e-6;
            arch.iter().zip(&self.weights).map(|(&o, w)| o as f64 * w).sum::<f64>() + jitter
        }
    }

    impl Fitness for Weighted {
        fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
            self.calls += 1;
            for arch in archs {
                *self.scored.entry(arch.clone()).or_default() += 1;
            }
            Ok(archs.iter().map(|a| self.value(a)).collect())
        }
    }

    fn nb201_like() -> (Space, Weighted) {
        (Space { counts: vec![5; 6], max_sum: None }, Weighted::new(vec![1.0; 6]))
    }

    fn run(config: SearchConfig, seed: u64, space: &mut Space, fitness: &mut Weighted) -> SearchState {
        let mut state = SearchState::new(config, seed, space.option_counts()).unwrap();
        state.run(space, fitness, None).unwrap();
        state
    }

    #[test]
    fn evolution_finds_the_optimum_with_a_fraction_of_exhaustive_evaluations() {
        let (mut space, mut fitness) = nb201_like();
        let state = run(SearchConfig::default(), 1, &mut space, &mut fitness);
        assert!(state.is_finished());
        assert_eq!(state.best().unwrap().arch, vec![4; 6]);
        assert!(state.history().len() <= 1050, "{}", state.history().len());
        assert!(state.history().len() < 15_625 / 10);
        assert!(fitness.scored.values().all(|&n| n == 1), "an architecture was scored twice");
        assert_eq!(fitness.calls, 21, "one batch per generation");
        assert_eq!(state.completed_generations(), 21);
        // Found early (evaluation 177 of 15,625 with this seed), not by exhausting the space.
        let first_hit = state.history().iter().position(|row| row.arch == vec![4; 6]).unwrap();
        assert!(first_hit < 500, "{first_hit}");
    }

    #[test]
    fn evolution_beats_random_search_on_the_same_budget_in_a_huge_space() {
        // 21 slots of 7 options (MobileNet-sized: 7^21 architectures), unequal weights.
        let weights: Vec<f64> = (0..21).map(|i| 1.0 + (i % 4) as f64).collect();
        let optimum: f64 = weights.iter().map(|w| 6.0 * w).sum();
        for seed in 0..3 {
            let mut space = Space { counts: vec![7; 21], max_sum: None };
            let evolved = run(SearchConfig::default(), seed, &mut space, &mut Weighted::new(weights.clone()));
            let random_config = SearchConfig { strategy: Strategy::Random, ..SearchConfig::default() };
            let random = run(random_config, seed, &mut space, &mut Weighted::new(weights.clone()));
            let (e, r) = (evolved.best().unwrap().fitness, random.best().unwrap().fitness);
            assert_eq!(evolved.history().len(), random.history().len(), "same budget");
            assert!(e > r + 0.1 * optimum, "seed {seed}: evolution {e}, random {r}, optimum {optimum}");
            assert!(e > 0.97 * optimum, "seed {seed}: evolution {e} of {optimum}");
        }
    }

    #[test]
    fn random_strategy_spends_exactly_the_budget_generation_by_generation() {
        let (mut space, mut fitness) = nb201_like();
        let config = SearchConfig { strategy: Strategy::Random, population: 30, generations: 4, mutations: 15, crossovers: 15, ..SearchConfig::default() };
        let state = run(config.clone(), 3, &mut space, &mut fitness);
        assert_eq!(state.history().len(), config.budget());
        for g in 0..=4 {
            assert_eq!(state.history().iter().filter(|row| row.generation == g).count(), 30);
        }
        assert!(fitness.scored.values().all(|&n| n == 1));
    }

    #[test]
    fn constraints_are_honoured_and_the_constrained_optimum_found() {
        let mut space = Space { counts: vec![5; 6], max_sum: Some(12) };
        let mut fitness = Weighted::new(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        let state = run(SearchConfig::default(), 4, &mut space, &mut fitness);
        assert!(state.history().iter().all(|row| row.arch.iter().sum::<u32>() <= 12));
        // Best under the limit: put the whole budget of 12 on the double-weight slots.
        assert_eq!(&state.best().unwrap().arch[3..], &[4, 4, 4]);
    }

    #[test]
    fn a_tiny_space_is_exhausted_and_ends_the_search_early() {
        let mut space = Space { counts: vec![2, 2], max_sum: None };
        let mut fitness = Weighted::new(vec![1.0, 1.0]);
        let state = run(SearchConfig::default(), 5, &mut space, &mut fitness);
        assert!(state.is_finished());
        assert_eq!(state.history().len(), 4);
        assert!(state.completed_generations() < 21);
        assert_eq!(state.best().unwrap().arch, vec![1, 1]);
        assert!(fitness.scored.values().all(|&n| n == 1));
    }

    #[test]
    fn rankings_are_best_first_with_deterministic_ties() {
        let mut space = Space { counts: vec![3, 3], max_sum: None };
        // Fitness = first option only: ties between architectures sharing it.
        struct FirstOnly;
        impl Fitness for FirstOnly {
            fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
                Ok(archs.iter().map(|a| a[0] as f64).collect())
            }
        }
        let mut state = SearchState::new(SearchConfig { top_k: 4, ..SearchConfig::default() }, 6, vec![3, 3]).unwrap();
        state.run(&mut space, &mut FirstOnly, None).unwrap();
        let ranked: Vec<Vec<u32>> = state.ranked().iter().map(|e| e.arch.clone()).collect();
        assert_eq!(ranked, [[2, 0], [2, 1], [2, 2], [1, 0], [1, 1], [1, 2], [0, 0], [0, 1], [0, 2]].map(Vec::from));
        let top: Vec<Vec<u32>> = state.top_k().iter().map(|e| e.arch.clone()).collect();
        assert_eq!(top, ranked[..4]);
    }

    #[test]
    fn interrupted_and_resumed_equals_uninterrupted() {
        let dir = std::env::temp_dir().join(format!("fewshot-search-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("search.json");
        for strategy in [Strategy::Evolution, Strategy::Random] {
            let config = SearchConfig { strategy, generations: 8, ..SearchConfig::default() };
            let weights: Vec<f64> = (0..12).map(|i| 0.3 + i as f64 * 0.1).collect();
            let mut space = Space { counts: vec![4; 12], max_sum: Some(30) };
            let whole = run(config.clone(), 9, &mut space, &mut Weighted::new(weights.clone()));

            let _ = fs::remove_file(&path);
            let mut fitness = Weighted::new(weights.clone());
            let mut first = SearchState::open(&path, config.clone(), 9, space.option_counts()).unwrap();
            for _ in 0..3 {
                first.run_generation(&mut space, &mut fitness).unwrap();
                first.save(&path).unwrap();
            }
            drop(first);
            let mut resumed = SearchState::open(&path, config.clone(), 9, space.option_counts()).unwrap();
            assert_eq!(resumed.completed_generations(), 3);
            resumed.run(&mut space, &mut fitness, Some(&path)).unwrap();
            assert_eq!(resumed, whole, "{strategy}");
            assert_eq!(SearchState::load(&path).unwrap(), whole);
            assert!(fitness.scored.values().all(|&n| n == 1), "re-scored after resuming");

            let other = SearchConfig { population: 40, ..config };
            let err = SearchState::open(&path, other, 9, space.option_counts()).unwrap_err().to_string();
            assert!(err.contains("started with settings"), "{err}");
            let err = SearchState::open(&path, SearchConfig { strategy, generations: 8, ..SearchConfig::default() }, 10, space.option_counts())
                .unwrap_err()
                .to_string();
            assert!(err.contains("seed 9, now 10"), "{err}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scores_round_trip_through_the_saved_state_exactly() {
        let mut rng = Rng::new(12);
        let mut state = SearchState::new(SearchConfig::default(), 0, vec![2]).unwrap();
        state.history = (0..2000)
            .map(|i| Evaluated { generation: 0, arch: vec![i % 2], fitness: f64::from_bits(rng.next_u64() >> 2) })
            .collect();
        let json = serde_json::to_string(&state.history).unwrap();
        let back: Vec<Evaluated> = serde_json::from_str(&json).unwrap();
        assert!(back.iter().zip(&state.history).all(|(a, b)| a.fitness.to_bits() == b.fitness.to_bits()));
    }

    #[test]
    fn corrupt_or_foreign_state_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("fewshot-search-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("search.json");
        fs::write(&path, "{\"format\": 1").unwrap();
        assert!(SearchState::load(&path).unwrap_err().to_string().contains("not a search state"));

        let (mut space, mut fitness) = nb201_like();
        let mut state = SearchState::new(SearchConfig::default(), 1, space.option_counts()).unwrap();
        state.run_generation(&mut space, &mut fitness).unwrap();
        let mut duplicated = state.clone();
        duplicated.history.push(duplicated.history[0].clone());
        duplicated.save(&path).unwrap();
        let err = SearchState::load(&path).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let mut out_of_range = state.clone();
        out_of_range.history[0].arch[0] = 5;
        out_of_range.save(&path).unwrap();
        assert!(SearchState::load(&path).unwrap_err().to_string().contains("out of range"));
        assert!(matches!(SearchState::load(&dir.join("missing.json")), Err(SearchError::Io { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_settings_and_misbehaving_plugins_are_errors_that_leave_the_state_unchanged() {
        let bad = SearchConfig { mutations: 30, crossovers: 30, ..SearchConfig::default() };
        assert!(SearchState::new(bad, 0, vec![5; 6]).unwrap_err().to_string().contains("exceed the population"));
        let bad = SearchConfig { mutation_prob: 1.5, ..SearchConfig::default() };
        assert!(SearchState::new(bad, 0, vec![5; 6]).is_err());
        assert!(SearchState::new(SearchConfig::default(), 0, vec![5, 0]).is_err());

        struct Short;
        impl Fitness for Short {
            fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
                Ok(vec![1.0; archs.len() - 1])
            }
        }
        struct NotANumber;
        impl Fitness for NotANumber {
            fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
                Ok(vec![f64::NAN; archs.len()])
            }
        }
        let (mut space, _) = nb201_like();
        let mut state = SearchState::new(SearchConfig::default(), 0, space.option_counts()).unwrap();
        let before = state.clone();
        assert!(state.run_generation(&mut space, &mut Short).unwrap_err().to_string().contains("scores for"));
        assert!(state.run_generation(&mut space, &mut NotANumber).unwrap_err().to_string().contains("scored NaN"));
        assert_eq!(state, before);

        struct WrongShape;
        impl Candidates for WrongShape {
            fn option_counts(&self) -> Vec<u32> {
                vec![5; 6]
            }
            fn random(&mut self, _: &mut Rng) -> Result<Vec<u32>, String> {
                Ok(vec![0; 5])
            }
            fn legal(&mut self, _: &[u32]) -> Result<bool, String> {
                Ok(true)
            }
        }
        let err = state.run_generation(&mut WrongShape, &mut Weighted::new(vec![1.0; 6])).unwrap_err().to_string();
        assert!(err.contains("has 5 positions, the space has 6"), "{err}");
        assert_eq!(state, before);
        assert_eq!("random".parse::<Strategy>().unwrap(), Strategy::Random);
        assert!("genetic".parse::<Strategy>().is_err());
    }
}
