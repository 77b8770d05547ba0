//! Architectures and the decision slots of a search space.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// One architecture: the option index chosen for each decision slot, in slot order.
///
/// The canonical text form belongs to the search space (`SearchSpace::format`/`parse`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Arch {
    /// Option index per slot.
    pub choices: RVec<u32>,
}

impl Arch {
    /// An architecture from its option indices.
    pub fn new(choices: Vec<u32>) -> Self {
        Arch { choices: choices.into() }
    }

    /// The option indices as a slice.
    pub fn as_slice(&self) -> &[u32] {
        &self.choices
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.choices.len()
    }

    /// True for the architecture of a space without slots.
    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }

    /// Checks that the architecture has one in-range option per slot.
    pub fn check_against(&self, slots: &[Slot]) -> Result<(), String> {
        if self.len() != slots.len() {
            return Err(format!(
                "architecture has {} choices but the space has {} slots",
                self.len(),
                slots.len()
            ));
        }
        for (i, (&c, slot)) in self.choices.iter().zip(slots).enumerate() {
            if c as usize >= slot.options.len() {
                return Err(format!(
                    "slot {i} ({}) has {} options, got option index {c}",
                    slot.name,
                    slot.options.len()
                ));
            }
        }
        Ok(())
    }
}

impl From<Vec<u32>> for Arch {
    fn from(v: Vec<u32>) -> Self {
        Arch::new(v)
    }
}

/// A decision slot of a search space: its name and the names of its options.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Slot name, e.g. `edge 1<-0` or `layer 7`.
    pub name: RString,
    /// Option names, in index order.
    pub options: RVec<RString>,
}

impl Slot {
    /// A slot from a name and option names.
    pub fn new<S: AsRef<str>>(name: &str, options: &[S]) -> Self {
        Slot {
            name: name.into(),
            options: options.iter().map(|o| RString::from(o.as_ref())).collect(),
        }
    }
}

/// Number of architectures of a product space with these slots, as a float (it may exceed `u64`).
pub fn space_size(slots: &[Slot]) -> f64 {
    slots.iter().map(|s| s.options.len() as f64).product()
}
