//! One loaded and compiled ClamAV engine: the signature databases of a directory, the scan
//! limits set, ready to scan whole messages from memory.
//!
//! Loading the official databases takes seconds and hundreds of MB: it is done once per
//! change of the directory, by the reload thread, never on a scanning thread's path. A compiled
//! engine is read-only and libclamav allows any number of threads to scan with it at once.
//!
//! It must never hand libclamav a string with a NUL (clamav-rs would panic) or a buffer that
//! does not outlive the scan.

use std::path::Path;

use clamav_rs::engine::{Engine, EngineValue, ScanResult};
use clamav_rs::fmap::Fmap;
use clamav_rs::scan_settings::ScanSettingsBuilder;
use clamav_sys::cl_engine_field as F;

use crate::{Limits, Outcome};

/// A compiled engine and what it was loaded from.
pub struct Loaded {
    engine: Engine,
    pub signatures: u32,
}

/// libclamav's process-wide initialisation, once.
pub fn init() -> Result<(), String> {
    clamav_rs::initialize().map_err(|e| format!("libclamav init: {e}"))
}

/// The version of the libclamav linked in.
pub fn version() -> String {
    clamav_rs::version()
}

/// Loads every database in `dir` (official .cvd/.cld and local .ndb/.hdb/.ldb/...), sets the
/// limits and compiles. A directory without any signature is an error: a scanner that knows
/// nothing must not answer "clean".
pub fn load(dir: &Path, limits: &Limits) -> Result<Loaded, String> {
    init()?;
    let path = dir.to_str().ok_or_else(|| format!("{}: path is not UTF-8", dir.display()))?;
    if path.contains('\0') {
        return Err(format!("{path}: path contains NUL"));
    }
    if !dir.is_dir() {
        return Err(format!("{path}: not a directory"));
    }
    let engine = Engine::new();
    let stats = engine.load_databases(path).map_err(|e| format!("{path}: {e}"))?;
    if stats.signature_count == 0 {
        return Err(format!("{path}: no signatures loaded"));
    }
    let set = |f: F, v: EngineValue| engine.set(f, v).map_err(|e| format!("{path}: setting {f:?}: {e}"));
    set(F::CL_ENGINE_MAX_SCANSIZE, EngineValue::U64(limits.max_scan_bytes))?;
    set(F::CL_ENGINE_MAX_FILESIZE, EngineValue::U64(limits.max_file_bytes))?;
    set(F::CL_ENGINE_MAX_RECURSION, EngineValue::U32(limits.max_recursion))?;
    set(F::CL_ENGINE_MAX_FILES, EngineValue::U32(limits.max_files))?;
    set(F::CL_ENGINE_MAX_SCANTIME, EngineValue::U32(limits.max_scan_ms))?;
    engine.compile().map_err(|e| format!("{path}: compile: {e}"))?;
    Ok(Loaded { engine, signatures: stats.signature_count })
}

impl Loaded {
    /// Scans one whole message (libclamav parses the MIME itself and opens what it contains).
    pub fn scan(&self, message: &[u8]) -> Outcome {
        if message.is_empty() {
            return Outcome::Clean;
        }
        let map = match Fmap::new_from_memory(message.as_ptr(), message.len() as u64) {
            Ok(m) => m,
            Err(_) => return Outcome::Error("libclamav could not map the message".into()),
        };
        let mut settings = ScanSettingsBuilder::new().build();
        // `map` borrows `message`, which outlives it (dropped at the end of this function).
        match self.engine.scan_map(&map, None, &mut settings) {
            Ok(ScanResult::Clean) | Ok(ScanResult::Whitelisted) => Outcome::Clean,
            Ok(ScanResult::Virus(name)) => Outcome::Virus(if name.is_empty() { "unnamed".into() } else { name }),
            Err(e) => Outcome::Error(format!("libclamav: {e}")),
        }
    }
}
