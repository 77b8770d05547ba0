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

    /// Checks that the architecture has one in-range option per slot ([`check_choices`]).
    pub fn check_against(&self, slots: &[Slot]) -> Result<(), String> {
        check_choices(self.as_slice(), slots.iter().map(|s| s.options.len() as u32)).map_err(|e| match e {
            ArchMismatch::Length { choices, slots: count } => {
                format!("architecture has {choices} choices but the space has {count} slots")
            }
            ArchMismatch::Option { slot, options, choice } => {
                format!("slot {slot} ({}) has {options} options, got option index {choice}", slots[slot].name)
            }
        })
    }
}

/// How an architecture fails to fit a space's slots (see [`check_choices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchMismatch {
    /// The architecture has `choices` option indices, the space `slots` slots.
    Length {
        /// Option indices in the architecture.
        choices: usize,
        /// Slots of the space.
        slots: usize,
    },
    /// The option index `choice` of slot `slot` is not below the slot's `options`.
    Option {
        /// The slot.
        slot: usize,
        /// Options of the slot.
        options: u32,
        /// The out-of-range option index.
        choice: u32,
    },
}

/// The one bounds check of an architecture: `choices` must hold one option index per slot, each
/// below its slot's count in `option_counts`. The first mismatch is returned; callers word it.
pub fn check_choices<I>(choices: &[u32], option_counts: I) -> Result<(), ArchMismatch>
where
    I: IntoIterator<Item = u32>,
    I::IntoIter: ExactSizeIterator,
{
    let counts = option_counts.into_iter();
    if choices.len() != counts.len() {
        return Err(ArchMismatch::Length { choices: choices.len(), slots: counts.len() });
    }
    match choices.iter().zip(counts).enumerate().find(|(_, (&choice, options))| choice >= *options) {
        Some((slot, (&choice, options))) => Err(ArchMismatch::Option { slot, options, choice }),
        None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_check_names_the_first_mismatch() {
        assert_eq!(check_choices(&[1, 0], [2, 3]), Ok(()));
        assert_eq!(check_choices(&[1], [2, 3]), Err(ArchMismatch::Length { choices: 1, slots: 2 }));
        assert_eq!(check_choices(&[1, 3, 9], [2, 3, 4]), Err(ArchMismatch::Option { slot: 1, options: 3, choice: 3 }));
        let slots = [Slot::new("a", &["x", "y"]), Slot::new("b", &["x"])];
        assert_eq!(Arch::new(vec![1, 1]).check_against(&slots).unwrap_err(), "slot 1 (b) has 1 options, got option index 1");
        assert!(Arch::new(vec![0]).check_against(&slots).unwrap_err().contains("1 choices but the space has 2 slots"));
    }
}
