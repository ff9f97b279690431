//! One tunable: name, type, default, range, doc, and its current value.
//!
//! Reading a number or flag is one relaxed atomic load, so knobs can be read on the hot path of
//! every core. Strings sit behind an `RwLock<Arc<str>>` and are cloned out (one atomic increment);
//! read them per connection or per event, not per byte.
//!
//! A knob never holds a value outside its range: `set` validates first and changes nothing on error.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The type of a knob, with its range where it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A whole number within `min..=max`.
    Int { min: i64, max: i64 },
    /// A decimal number within `min..=max` (scores, ratios); stored as its bits.
    Float { min: f64, max: f64 },
    /// `0`/`1`, `true`/`false`, `yes`/`no`, `on`/`off`.
    Bool,
    /// Free text (addresses, paths, lists); validated by the code that reads it.
    Str,
}

/// One knob. Defined once, as a `static`, by [`crate::knobs!`].
pub struct Knob {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as written in the docs and config files.
    pub default: &'static str,
    /// `true` when `mxguard sysctl name=value` takes effect at once; `false` when the knob is read
    /// only at start-up and a change needs a restart.
    pub live: bool,
    pub doc: &'static str,
    int: AtomicI64,
    text: RwLock<Option<Arc<str>>>,
    /// Bumped on every change, so readers that cache a derived structure know to rebuild it.
    generation: AtomicU64,
}

impl Knob {
    /// A whole-number knob. `default` must lie within `min..=max` (checked by a test over the registry).
    pub const fn int(
        name: &'static str,
        default: i64,
        default_text: &'static str,
        min: i64,
        max: i64,
        live: bool,
        doc: &'static str,
    ) -> Knob {
        Knob {
            name,
            kind: Kind::Int { min, max },
            default: default_text,
            live,
            doc,
            int: AtomicI64::new(default),
            text: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// A decimal knob; `default` must lie within `min..=max`.
    pub const fn float(
        name: &'static str,
        default: f64,
        default_text: &'static str,
        min: f64,
        max: f64,
        live: bool,
        doc: &'static str,
    ) -> Knob {
        Knob {
            name,
            kind: Kind::Float { min, max },
            default: default_text,
            live,
            doc,
            int: AtomicI64::new(default.to_bits() as i64),
            text: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    pub const fn bool(name: &'static str, default: bool, live: bool, doc: &'static str) -> Knob {
        Knob {
            name,
            kind: Kind::Bool,
            default: if default { "1" } else { "0" },
            live,
            doc,
            int: AtomicI64::new(default as i64),
            text: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    pub const fn text(name: &'static str, default: &'static str, live: bool, doc: &'static str) -> Knob {
        Knob {
            name,
            kind: Kind::Str,
            default,
            live,
            doc,
            int: AtomicI64::new(0),
            text: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Current value of a number or flag knob.
    #[inline]
    pub fn get(&self) -> i64 {
        self.int.load(Ordering::Relaxed)
    }

    /// Current value as `u64` (number knobs have non-negative ranges unless documented otherwise).
    #[inline]
    pub fn get_u64(&self) -> u64 {
        self.get().max(0) as u64
    }

    #[inline]
    pub fn get_usize(&self) -> usize {
        self.get().max(0) as usize
    }

    /// Current value of a decimal knob.
    #[inline]
    pub fn get_f64(&self) -> f64 {
        f64::from_bits(self.get() as u64)
    }

    #[inline]
    pub fn get_bool(&self) -> bool {
        self.get() != 0
    }

    /// Current value of a text knob.
    pub fn get_str(&self) -> Arc<str> {
        let guard = self.text.read().unwrap_or_else(|e| e.into_inner());
        match &*guard {
            Some(s) => s.clone(),
            None => Arc::from(self.default),
        }
    }

    /// Changes of this knob so far; see the field doc.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current value rendered as it would be written in a config file.
    pub fn value_text(&self) -> String {
        match self.kind {
            Kind::Int { .. } => self.get().to_string(),
            Kind::Float { .. } => self.get_f64().to_string(),
            Kind::Bool => (self.get() as u8).to_string(),
            Kind::Str => self.get_str().to_string(),
        }
    }

    /// Parses `value` for this knob without changing anything.
    pub fn parse(&self, value: &str) -> Result<Parsed, String> {
        let v = value.trim();
        match self.kind {
            Kind::Int { min, max } => {
                let digits: String = v.chars().filter(|c| *c != '_').collect();
                let n: i64 = digits
                    .parse()
                    .map_err(|_| format!("{}: '{}' is not a whole number", self.name, v))?;
                if n < min || n > max {
                    return Err(format!("{}: {} is outside {}..={}", self.name, n, min, max));
                }
                Ok(Parsed::Int(n))
            }
            Kind::Float { min, max } => {
                let n: f64 = v.parse().map_err(|_| format!("{}: '{}' is not a number", self.name, v))?;
                if !n.is_finite() || n < min || n > max {
                    return Err(format!("{}: {} is outside {}..={}", self.name, v, min, max));
                }
                Ok(Parsed::Int(n.to_bits() as i64))
            }
            Kind::Bool => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Parsed::Int(1)),
                "0" | "false" | "no" | "off" => Ok(Parsed::Int(0)),
                _ => Err(format!("{}: '{}' is not a flag (use 0 or 1)", self.name, v)),
            },
            Kind::Str => {
                let unquoted = v
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(v);
                Ok(Parsed::Text(unquoted.to_string()))
            }
        }
    }

    /// Stores a value produced by [`Knob::parse`].
    pub fn store(&self, parsed: Parsed) {
        match parsed {
            Parsed::Int(n) => self.int.store(n, Ordering::Relaxed),
            Parsed::Text(s) => {
                let mut guard = self.text.write().unwrap_or_else(|e| e.into_inner());
                *guard = Some(Arc::from(s));
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Parses and stores; on error nothing changes.
    pub fn set(&self, value: &str) -> Result<(), String> {
        let parsed = self.parse(value)?;
        self.store(parsed);
        Ok(())
    }

    /// Puts the knob back to its default.
    pub fn reset(&self) {
        // The default text always parses: a registry test checks every default.
        if let Ok(p) = self.parse(self.default) {
            self.store(p);
        }
    }
}

/// A value that passed a knob's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Int(i64),
    Text(String),
}
