//! Local domains and where their mail goes, in the reference products' syntax:
//! `domain[:host[:port]]`, from the `relay.domains` knob and the `relay.domains_file` file.
//!
//! [`current`] returns the table as an `Arc`, rebuilt only when a knob changed or the file's
//! modification time moved (checked at most once a second), so the lookup on the RCPT path is a
//! hash probe. A bad file keeps the previous table and logs `file:line: reason`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use mxguard_tuning as k;

/// A downstream destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dest {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host[:port]` (IPv6 as `[addr]:port`); port defaults to 25.
pub fn parse_dest(s: &str) -> Result<Dest, String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(|| format!("bad destination `{s}`"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in `{s}`"))?,
            None if tail.is_empty() => 25,
            None => return Err(format!("bad destination `{s}`")),
        };
        (h.to_string(), port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| format!("bad port in `{s}`"))?),
            None => (s.to_string(), 25),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("bad destination host in `{s}`"));
    }
    if port == 0 {
        return Err(format!("port 0 in `{s}`"));
    }
    Ok(Dest { host, port })
}

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Lower-case domain → its own route, if any.
    domains: HashMap<String, Option<Dest>>,
    default: Option<Dest>,
    bounce: Option<Dest>,
}

impl Routes {
    /// Builds the table from the entries of the knob and the file (`source` names the file).
    pub fn build(knob: &str, file: Option<(&str, &str)>, default: &str, bounce: &str) -> Result<Routes, Vec<String>> {
        let mut r = Routes::default();
        let mut errors = Vec::new();
        for (i, entry) in knob.split([',', ' ', '\n']).map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            if let Err(e) = r.add(entry) {
                errors.push(format!("relay.domains entry {}: {e}", i + 1));
            }
        }
        if let Some((source, text)) = file {
            for (i, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                if let Err(e) = r.add(line) {
                    errors.push(format!("{source}:{}: {e}", i + 1));
                }
            }
        }
        if !default.trim().is_empty() {
            match parse_dest(default) {
                Ok(d) => r.default = Some(d),
                Err(e) => errors.push(format!("relay.default_route: {e}")),
            }
        }
        if !bounce.trim().is_empty() {
            match parse_dest(bounce) {
                Ok(d) => r.bounce = Some(d),
                Err(e) => errors.push(format!("relay.bounce_route: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    fn add(&mut self, entry: &str) -> Result<(), String> {
        let (domain, route) = match entry.split_once(':') {
            Some((d, rest)) => (d, Some(parse_dest(rest)?)),
            None => (entry, None),
        };
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(format!("bad domain `{domain}`"));
        }
        self.domains.insert(domain, route);
        Ok(())
    }

    /// Every local domain with where its mail goes (its own route, else the default), sorted.
    pub fn domains(&self) -> Vec<(String, Option<Dest>)> {
        let mut v: Vec<(String, Option<Dest>)> = self.domains.keys().map(|d| (d.clone(), self.route_for(d))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Mail for `domain` (lower-case) is ours to accept.
    pub fn is_local(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }

    /// Where mail for `domain` goes: its own route, else the default route.
    pub fn route_for(&self, domain: &str) -> Option<Dest> {
        match self.domains.get(domain) {
            Some(Some(d)) => Some(d.clone()),
            _ => self.default.clone(),
        }
    }

    /// Where a DSN to `domain` goes.
    pub fn bounce_route_for(&self, domain: &str) -> Option<Dest> {
        self.bounce.clone().or_else(|| self.route_for(domain))
    }

    /// The first local domain (for the bare `postmaster` recipient).
    pub fn first_domain(&self) -> Option<&str> {
        self.domains.keys().min().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

struct Cache {
    routes: Arc<Routes>,
    generations: [u64; 4],
    file_mtime: Option<SystemTime>,
    checked: Instant,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn generations() -> [u64; 4] {
    [
        k::RELAY_DOMAINS.generation(),
        k::RELAY_DOMAINS_FILE.generation(),
        k::RELAY_DEFAULT_ROUTE.generation(),
        k::RELAY_BOUNCE_ROUTE.generation(),
    ]
}

fn file_mtime(path: &str) -> Option<SystemTime> {
    if path.is_empty() {
        return None;
    }
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load() -> Result<(Routes, Option<SystemTime>), Vec<String>> {
    let path = k::RELAY_DOMAINS_FILE.get_str();
    let text = if path.is_empty() {
        None
    } else {
        Some(std::fs::read_to_string(&*path).map_err(|e| vec![format!("{path}: {e}")])?)
    };
    let routes = Routes::build(
        &k::RELAY_DOMAINS.get_str(),
        text.as_deref().map(|t| (&*path, t)),
        &k::RELAY_DEFAULT_ROUTE.get_str(),
        &k::RELAY_BOUNCE_ROUTE.get_str(),
    )?;
    Ok((routes, file_mtime(&path)))
}

/// Validates the current knobs and file; used at start-up so a bad table stops the gateway.
pub fn check() -> Result<Arc<Routes>, Vec<String>> {
    let (r, mtime) = load()?;
    let r = Arc::new(r);
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(Cache { routes: r.clone(), generations: generations(), file_mtime: mtime, checked: Instant::now() });
    Ok(r)
}

/// Makes the next [`current`] read the domains file again whatever the time since the last
/// look (the console calls it after writing the file, so its change is in force at once).
pub fn recheck() {
    if let Some(c) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        c.file_mtime = None;
        c.checked = Instant::now().checked_sub(std::time::Duration::from_secs(2)).unwrap_or(c.checked);
    }
}

/// The current table.
pub fn current() -> Arc<Routes> {
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let gens = generations();
    let stale = match &*g {
        None => true,
        Some(c) => {
            c.generations != gens
                || (c.checked.elapsed().as_secs() >= 1 && {
                    let m = file_mtime(&k::RELAY_DOMAINS_FILE.get_str());
                    m != c.file_mtime
                })
        }
    };
    if stale {
        match load() {
            Ok((r, mtime)) => {
                *g = Some(Cache { routes: Arc::new(r), generations: gens, file_mtime: mtime, checked: Instant::now() });
            }
            Err(errors) => {
                for e in &errors {
                    mxguard_telemetry::Event::new("config_error").str("error", e).emit();
                }
                match g.as_mut() {
                    Some(c) => {
                        // Keep the previous table; do not retry until something changes again.
                        c.generations = gens;
                        c.file_mtime = file_mtime(&k::RELAY_DOMAINS_FILE.get_str());
                        c.checked = Instant::now();
                    }
                    None => {
                        *g = Some(Cache {
                            routes: Arc::new(Routes::default()),
                            generations: gens,
                            file_mtime: None,
                            checked: Instant::now(),
                        })
                    }
                }
            }
        }
    } else if let Some(c) = g.as_mut() {
        if c.checked.elapsed().as_secs() >= 1 {
            c.checked = Instant::now();
        }
    }
    g.as_ref().map(|c| c.routes.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_syntax() {
        let r = Routes::build(
            "example.test, Other.Example:mail.other.example:2525",
            Some(("domains.txt", "# comment\nthird.example:[2001:db8::25]:26\nfourth.example:10.0.0.1\n\n")),
            "127.0.0.1:2526",
            "",
        )
        .unwrap();
        assert!(r.is_local("example.test") && r.is_local("other.example") && r.is_local("third.example"));
        assert!(!r.is_local("example.com"));
        assert_eq!(r.route_for("example.test"), Some(Dest { host: "127.0.0.1".into(), port: 2526 }));
        assert_eq!(r.route_for("other.example"), Some(Dest { host: "mail.other.example".into(), port: 2525 }));
        assert_eq!(r.route_for("third.example").unwrap().to_string(), "[2001:db8::25]:26");
        assert_eq!(r.route_for("fourth.example").unwrap().port, 25);
        assert_eq!(r.bounce_route_for("remote.example").unwrap().port, 2526);
        assert_eq!(r.first_domain(), Some("example.test"));
    }

    #[test]
    fn errors_name_their_place() {
        let e = Routes::build("ok.example, bad.example:host:notaport", Some(("f.txt", "x.example\nbad@x\n")), "h:1", "h:0").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("relay.domains entry 2"));
        assert!(e[1].starts_with("f.txt:2:"));
        assert!(e[2].starts_with("relay.bounce_route"));
    }
}
