//! The knob registry: every tunable of mxguard, defined once in [`registry`], readable lock-free,
//! changeable live where the knob allows, loadable from sysctl-style config files, and documented
//! from the same definitions (`tuning/KNOBS.md`, `tuning/mxguard.conf`).
//!
//! This crate must never hold a knob's definition anywhere but `registry.rs`.

pub mod config;
pub mod doc;
pub mod knob;
pub mod manpage;
pub mod registry;

pub use knob::{Kind, Knob, Parsed};
pub use registry::*;

/// The knob named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Knob> {
    registry::ALL.iter().copied().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_lies_in_range() {
        for k in ALL {
            let parsed = k.parse(k.default).unwrap_or_else(|e| panic!("{e}"));
            if let (Kind::Int { .. }, Parsed::Int(n)) = (k.kind, &parsed) {
                assert_eq!(*n, k.get(), "{}: default text and value differ", k.name);
            }
        }
    }

    #[test]
    fn names_are_unique_sysctl_style_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL {
            assert!(seen.insert(k.name), "duplicate knob {}", k.name);
            let (section, rest) = k.name.split_once('.').expect("section.name");
            assert!(!section.is_empty() && !rest.is_empty(), "{}", k.name);
            assert!(
                k.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'),
                "{}",
                k.name
            );
            assert!(!k.doc.is_empty() && !k.doc.contains('\n'), "{}: doc must be one line", k.name);
        }
    }

    #[test]
    fn set_validates_before_changing() {
        let k = &SMTP_MAX_ERRORS;
        let before = k.get();
        assert!(k.set("0").is_err());
        assert!(k.set("abc").is_err());
        assert_eq!(k.get(), before);
        let g = k.generation();
        k.set("33").unwrap();
        assert_eq!(k.get(), 33);
        assert!(k.generation() > g);
        k.reset();
        assert_eq!(k.get(), before);
        assert!(SMTP_STARTTLS.parse("maybe").is_err());
        assert_eq!(SMTP_STARTTLS.parse("off").unwrap(), Parsed::Int(0));
        assert_eq!(SMTP_MAX_CONNECTIONS.parse("1_000").unwrap(), Parsed::Int(1000));
    }
}
