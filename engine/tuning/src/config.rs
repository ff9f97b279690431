//! Config files in sysctl syntax: `name = value` per line, `#` comments, blank lines ignored.
//!
//! A file is applied all or nothing: every line is parsed and validated first, and one bad line
//! (unknown knob, bad value, missing `=`) rejects the whole file with `file:line: reason`.

use crate::{find, Knob, Parsed};

/// What a validated file would change.
pub struct Plan {
    pub changes: Vec<(&'static Knob, Parsed)>,
}

impl Plan {
    /// Applies the plan.
    pub fn apply(self) {
        for (k, v) in self.changes {
            k.store(v);
        }
    }
}

/// Parses config text; `source` names it in error messages.
pub fn parse(text: &str, source: &str) -> Result<Plan, Vec<String>> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            errors.push(format!("{source}:{}: expected `name = value`", i + 1));
            continue;
        };
        let name = name.trim();
        match find(name) {
            None => errors.push(format!("{source}:{}: unknown knob `{name}`", i + 1)),
            Some(k) => match k.parse(value) {
                Ok(v) => changes.push((k, v)),
                Err(e) => errors.push(format!("{source}:{}: {e}", i + 1)),
            },
        }
    }
    if errors.is_empty() {
        Ok(Plan { changes })
    } else {
        Err(errors)
    }
}

/// Reads, validates and applies a config file.
pub fn load_file(path: &std::path::Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    parse(&text, &path.display().to_string())?.apply();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_line_rejects_whole_file_with_location() {
        let text = "# comment\nrelay.conn_idle_s = 7\nsmtp.nope = 1\nsmtp.max_recipients = x\nnonsense\n";
        let errs = match parse(text, "t.conf") {
            Err(e) => e,
            Ok(_) => panic!("bad file accepted"),
        };
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("t.conf:3: unknown knob"), "{errs:?}");
        assert!(errs[1].starts_with("t.conf:4: smtp.max_recipients"), "{errs:?}");
        assert!(errs[2].starts_with("t.conf:5: expected"), "{errs:?}");
        assert_eq!(crate::RELAY_CONN_IDLE_S.get(), 5, "nothing applied");
    }

    #[test]
    fn good_file_applies() {
        let plan = parse("relay.helo_name = \"relay.example\"\n", "t").unwrap();
        plan.apply();
        assert_eq!(&*crate::RELAY_HELO_NAME.get_str(), "relay.example");
        crate::RELAY_HELO_NAME.reset();
        assert_eq!(&*crate::RELAY_HELO_NAME.get_str(), "");
    }
}
