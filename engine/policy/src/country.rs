//! The country of a client address, from a MaxMind DB file (GeoLite2/GeoIP2 Country or City, or
//! any `.mmdb` with `country.iso_code`), for the reference products' country blacklist.
//!
//! The file is read whole into memory at start and on `mxguard reload`, and swapped atomically:
//! a lookup on a core takes a read lock for the pointer clone and walks the in-memory tree
//! (about a microsecond, no I/O). A file that does not load keeps the previous one in service.
//! It must never be read on a core's request path.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use maxminddb::{PathElement, Reader};

/// A loaded country database.
pub struct Countries {
    reader: Reader<Vec<u8>>,
    pub path: PathBuf,
}

impl Countries {
    pub fn load(path: &Path) -> Result<Countries, String> {
        let reader = Reader::open_readfile(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Countries { reader, path: path.to_path_buf() })
    }

    /// The ISO 3166 code (upper case) of `ip`'s country, else of its registered country.
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        for top in ["country", "registered_country"] {
            if let Ok(Some(code)) = found.decode_path::<String>(&[PathElement::Key(top), PathElement::Key("iso_code")]) {
                return Some(code.to_ascii_uppercase());
            }
        }
        None
    }

    /// The database's build description (type and build time), for the start-up log.
    pub fn describe(&self) -> String {
        format!("{} built {}", self.reader.metadata().database_type, self.reader.metadata().build_epoch)
    }
}

static CURRENT: RwLock<Option<Arc<Countries>>> = RwLock::new(None);

/// Loads `path` as the process's country database (replacing any previous one), or clears it
/// when `path` is `None`. On error the previous database stays.
pub fn install(path: Option<&Path>) -> Result<Option<String>, String> {
    let next = match path {
        Some(p) => Some(Arc::new(Countries::load(p)?)),
        None => None,
    };
    let about = next.as_ref().map(|c| c.describe());
    *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = next;
    Ok(about)
}

/// The country of `ip`, if a database is installed and knows it.
pub fn of(ip: IpAddr) -> Option<String> {
    let db = CURRENT.read().unwrap_or_else(|p| p.into_inner()).clone()?;
    db.lookup(ip)
}

/// Whether `code` is in `list` (ISO codes separated by commas or spaces, any case).
pub fn listed(list: &str, code: &str) -> bool {
    list.split([',', ' ', ';']).map(str::trim).any(|c| !c.is_empty() && c.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_and_keeps_the_old_one() {
        let p = std::env::temp_dir().join(format!("mxguard-country-{}.mmdb", std::process::id()));
        std::fs::write(&p, b"not a maxmind database").unwrap();
        assert!(Countries::load(&p).err().is_some_and(|e| e.contains("mxguard-country")));
        assert!(install(Some(&p)).is_err());
        assert!(Countries::load(Path::new("/nonexistent/x.mmdb")).is_err());
        assert_eq!(of("192.0.2.1".parse().unwrap()), None, "nothing installed");
    }

    #[test]
    fn list_syntax() {
        assert!(listed("CN, RU;kp", "KP"));
        assert!(listed("cn ru", "RU"));
        assert!(!listed("CN,RU", "US"));
        assert!(!listed("", "US"));
    }
}
