//! Turns abi_stable's layout-check report (often hundreds of lines of type layouts) into one
//! sentence a plugin author can act on: which type, field or method differs, and how.

use std::path::Path;

use fewshot_sdk::{
    abi_stable::{
        abi_stability::abi_checking::{AbiInstability, AbiInstabilityError, AbiInstabilityErrors},
        type_layout::{TLFieldOrFunction, TypeLayout},
    },
};

/// Packages whose types are plumbing (containers, pointers, trait-object machinery), not part of
/// the fewshot contract: the summary names the contract types around them.
const PLUMBING_PACKAGES: [&str; 3] = ["abi_stable", "std", "core"];

/// One way the library's layout differs from the host's, with how much it explains.
struct Difference {
    /// Lower is more fundamental: a changed field type explains a changed size, not the reverse.
    rank: u8,
    text: String,
}

/// Why abi_stable refused a library's layout.
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The library is an abi_stable library, but of another application.
    Foreign {
        /// Its root module type.
        root: String,
        /// The root module type of a fewshot plugin.
        expected: String,
    },
    /// A fewshot plugin whose types differ from the host's: the most telling difference, in
    /// one sentence (`None` when abi_stable gave no details).
    Differs(Option<String>),
}

/// Summarises the structured result of abi_stable's layout check (abi_stable hands the loader
/// only its formatted text, so the registry re-runs the check to get `errors`).
pub fn summarize(errors: &AbiInstabilityErrors) -> Mismatch {
    if errors.interface.name() != errors.implementation.name() {
        return Mismatch::Foreign {
            root: errors.implementation.name().to_string(),
            expected: errors.interface.name().to_string(),
        };
    }
    let mut differences: Vec<Difference> = errors
        .errors
        .iter()
        .flat_map(|error| error.errs.iter().map(move |err| describe(errors.interface, error, err)))
        .collect();
    differences.sort_by_key(|d| d.rank);
    differences.dedup_by(|a, b| a.text == b.text);
    let Some(first) = differences.first() else {
        return Mismatch::Differs(None);
    };
    let more = match differences.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more difference)".to_string(),
        n => format!(" (and {n} more differences)"),
    };
    Mismatch::Differs(Some(format!("{}{more}", first.text)))
}

/// What one error says, in terms of the fewshot types around it.
fn describe(root: &'static TypeLayout, error: &AbiInstabilityError, err: &AbiInstability) -> Difference {
    let trail = Trail::of(root, error);
    let subject = trail.subject();
    let via = trail.via();
    let (rank, what) = match err {
        AbiInstability::Name(ef) => (0, format!("`{subject}` is `{}` in the library but `{}` here", ef.found, ef.expected)),
        AbiInstability::UnexpectedField(ef) => (
            0,
            format!(
                "`{}` has field `{}` where this fewshot has `{}`",
                trail.owner(),
                ef.found.name(),
                ef.expected.name()
            ),
        ),
        AbiInstability::FieldCountMismatch(ef) => {
            let members = if trail.in_vtable { "methods" } else { "fields" };
            let age = if ef.found < ef.expected {
                "the library was built against an older fewshot-sdk, which lacks"
            } else {
                "the library was built against a different fewshot-sdk, with"
            };
            (
                1,
                format!(
                    "{age} {members} of `{}` ({} entries in the library, {} here)",
                    trail.owner(),
                    ef.found,
                    ef.expected
                ),
            )
        }
        AbiInstability::TooManyVariants(ef) => (
            1,
            format!("`{subject}` has {} variants in the library but {} here", ef.found, ef.expected),
        ),
        AbiInstability::UnexpectedVariant(ef) => (
            1,
            format!("`{subject}` has variant `{}` where this fewshot has `{}`", ef.found, ef.expected),
        ),
        AbiInstability::PackageVersion(ef) => (
            2,
            format!("`{subject}` comes from version {} in the library but {} here", ef.found, ef.expected),
        ),
        AbiInstability::Package(ef) => (
            2,
            format!("`{subject}` comes from package `{}` in the library but `{}` here", ef.found, ef.expected),
        ),
        AbiInstability::MismatchedPrimitive(ef) => (
            2,
            format!("`{subject}` is {:?} in the library but {:?} here", ef.found, ef.expected),
        ),
        AbiInstability::IncompatibleWithNonExhaustive(e) => (2, format!("`{subject}`: {e}")),
        AbiInstability::MismatchedPrefixSize(ef) => (
            3,
            format!(
                "`{}` has {} prefix fields in the library but {} here",
                trail.owner(),
                ef.found,
                ef.expected
            ),
        ),
        AbiInstability::Size(ef) => (
            4,
            format!("`{subject}` is {} bytes in the library but {} here", ef.found, ef.expected),
        ),
        AbiInstability::Alignment(ef) => (
            4,
            format!("`{subject}` is aligned to {} bytes in the library but {} here", ef.found, ef.expected),
        ),
        other => (5, format!("`{subject}` differs: {}", short_label(other))),
    };
    let text = match via {
        Some(via) => format!("{what} (reached through {via})"),
        None => what,
    };
    Difference { rank, text }
}

/// A few words for the rarer kinds of mismatch.
fn short_label(err: &AbiInstability) -> &'static str {
    match err {
        AbiInstability::NonZeroness(_) => "whether it can be zero",
        AbiInstability::GenericParamCount(_) => "the number of generic parameters",
        AbiInstability::TLDataDiscriminant(_) => "the kind of type (struct, enum, union, prefix type)",
        AbiInstability::FieldLifetimeMismatch(_) => "the lifetimes a field references",
        AbiInstability::FnLifetimeMismatch(_) => "the lifetimes of a function pointer",
        AbiInstability::FnQualifierMismatch(_) => "function qualifiers (unsafe, extern)",
        AbiInstability::MismatchedPrefixConditionality(_) => "which prefix fields are conditional",
        AbiInstability::MismatchedExhaustiveness(_) => "whether the enum is non-exhaustive",
        AbiInstability::MismatchedConstParam(_) => "a const parameter",
        AbiInstability::ReprAttr(_) => "the #[repr] attribute",
        AbiInstability::EnumDiscriminant(_) => "an enum discriminant",
        AbiInstability::PackageVersionParseError(_) => "an unreadable package version",
        _ => "an abi_stable consistency check failed",
    }
}

/// The fewshot-level path of a layout error: `Owner.field` steps from the root module down to
/// the place that differs, skipping abi_stable's plumbing (vectors, pointers, vtables).
struct Trail {
    steps: Vec<String>,
    /// The innermost contract type the error is in (a trait is named without `_TO`).
    owner: Option<String>,
    /// Whether the last step ended at a field (so the subject is that field, not the owner).
    ends_at_field: bool,
    /// Whether the innermost contract type is a trait object's vtable.
    in_vtable: bool,
}

impl Trail {
    /// The trail of `error`, found while checking the root type `root`.
    fn of(root: &'static TypeLayout, error: &AbiInstabilityError) -> Trail {
        let mut trail = Trail {
            steps: Vec::new(),
            owner: is_contract(root).then(|| root.name().to_string()),
            ends_at_field: false,
            in_vtable: false,
        };
        let mut container: &'static TypeLayout = root;
        for step in error.stack_trace.iter() {
            let TLFieldOrFunction::Field(field) = &step.expected else {
                continue;
            };
            let layout = field.layout();
            let in_contract = is_contract(container);
            trail.ends_at_field = false;
            if in_contract && is_member_name(field.name()) {
                if let Some(owner) = &trail.owner {
                    trail.steps.push(format!("{owner}.{}", field.name()));
                    trail.ends_at_field = true;
                }
            }
            if is_contract(layout) {
                if layout.name() == "VTable" {
                    trail.in_vtable = true;
                } else {
                    trail.owner = Some(layout.name().trim_end_matches("_TO").to_string());
                    trail.in_vtable = false;
                }
            }
            container = layout;
        }
        trail
    }

    fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or("the root module")
    }

    /// The field that differs, or the type when the error is about the type as a whole.
    fn subject(&self) -> String {
        match self.steps.last() {
            Some(step) if self.ends_at_field => step.clone(),
            _ => self.owner().to_string(),
        }
    }

    /// How the host reaches the subject (at most the last three steps before it).
    fn via(&self) -> Option<String> {
        let before = if self.ends_at_field { &self.steps[..self.steps.len() - 1] } else { &self.steps[..] };
        match before.len() {
            0 => None,
            n if n > 3 => Some(format!("… → {}", before[n - 3..].join(" → "))),
            _ => Some(before.join(" → ")),
        }
    }
}

/// A type of the plugin contract (declared outside abi_stable and the standard library).
fn is_contract(layout: &TypeLayout) -> bool {
    !PLUMBING_PACKAGES.contains(&layout.package().as_str())
}

/// A field or method a plugin author wrote, not a generated one (`0`, `field_0`, `__returns`,
/// `param_2`, a trait object's `obj` and `vtable`, …).
fn is_member_name(name: &str) -> bool {
    let generated = name.starts_with('_')
        || name.chars().all(|c| c.is_ascii_digit())
        || ["field_", "param_"]
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit())))
        || ["obj", "vtable"].contains(&name);
    !generated
}

/// Removes the `path: ` prefix the dynamic loader puts in front of its messages.
pub fn strip_path(message: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    message.replace(&prefix, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fewshot_sdk::abi_stable::{
        abi_stability::abi_checking::check_layout_compatibility, StableAbi,
    };

    mod host_side {
        use fewshot_sdk::abi_stable::StableAbi;

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Metrics {
            pub count: u32,
            pub flops: f64,
        }

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Entry {
            pub name: u32,
            pub metrics: Metrics,
        }
    }

    mod changed_type {
        use fewshot_sdk::abi_stable::StableAbi;

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Metrics {
            pub count: u64,
            pub flops: f64,
        }

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Entry {
            pub name: u32,
            pub metrics: Metrics,
        }
    }

    mod renamed_field {
        use fewshot_sdk::abi_stable::StableAbi;

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Metrics {
            pub total: u32,
            pub flops: f64,
        }

        #[repr(C)]
        #[derive(StableAbi)]
        pub struct Entry {
            pub name: u32,
            pub metrics: Metrics,
        }
    }

    fn summary_of<Library: StableAbi>() -> String {
        let errors = check_layout_compatibility(host_side::Entry::LAYOUT, Library::LAYOUT)
            .expect_err("the layouts differ");
        match summarize(&errors) {
            Mismatch::Differs(Some(text)) => text,
            other => panic!("expected a described difference, got {other:?}"),
        }
    }

    #[test]
    fn a_changed_field_type_is_named_with_both_types() {
        let s = summary_of::<changed_type::Entry>();
        assert!(
            s.starts_with("`Metrics.count` is `u64` in the library but `u32` here (reached through Entry.metrics)"),
            "{s}"
        );
        assert!(!s.contains('\n'), "{s}");
    }

    #[test]
    fn a_renamed_field_is_named() {
        let s = summary_of::<renamed_field::Entry>();
        assert!(s.starts_with("`Metrics` has field `total` where this fewshot has `count`"), "{s}");
    }

    #[test]
    fn another_root_type_is_foreign() {
        let errors = check_layout_compatibility(host_side::Entry::LAYOUT, host_side::Metrics::LAYOUT)
            .expect_err("the layouts differ");
        assert_eq!(
            summarize(&errors),
            Mismatch::Foreign { root: "Metrics".into(), expected: "Entry".into() }
        );
    }

    #[test]
    fn generated_names_are_not_members() {
        for generated in ["0", "field_0", "__returns", "param_2", "_phantom_ty_param_0", "obj", "vtable"] {
            assert!(!is_member_name(generated), "{generated}");
        }
        for real in ["count", "entries", "slots_in_series", "field_name", "param"] {
            assert!(is_member_name(real), "{real}");
        }
    }

    #[test]
    fn loader_messages_lose_the_path_prefix() {
        let path = Path::new("/tmp/x.so");
        assert_eq!(strip_path("/tmp/x.so: invalid ELF header", path), "invalid ELF header");
    }
}
