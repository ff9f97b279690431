//! The one-time setup code that makes the first superadmin on a node that has none (the
//! appliance booted without a seed, or with a seed that names no `[admin]` password).
//!
//! `mxguard setup-code` issues it: a fresh random code of 60 bits (`XXXX-XXXX-XXXX`, letters and
//! digits that cannot be mistaken for one another), printed once for the operator — the
//! appliance puts it on the screen and the serial console — of which only the SHA-256 is kept,
//! in `state.dir/setup-code`. The console's `/setup` page spends it: the code, a login and a
//! password make that login the superadmin, and the file is removed.
//!
//! Guarantees: a code is never accepted while a superadmin exists, never twice, and only the
//! newest one issued works (issuing replaces the file). Failed tries are throttled like logins
//! (by the caller). Costs: issuing reads the accounts once; spending reads one small file and
//! writes one account. Never: stores or logs the code itself.

use std::path::{Path, PathBuf};

use ring::rand::SecureRandom as _;

use crate::users::{Account, Role, Users};

/// The code's file, in `state.dir`.
pub const FILE: &str = "setup-code";

/// Letters and digits without 0/O and 1/I: read off a screen and typed in without doubt.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters in a code (5 bits each).
const LENGTH: usize = 12;

/// Why a code did not make a superadmin.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A superadmin exists: setup is over (log in instead).
    Done,
    /// No code is waiting (never issued, or spent).
    NoCode,
    /// Not the code that was issued.
    WrongCode,
    /// The account was not accepted (its reason); the code stays valid.
    Account(String),
    /// The account database or the code's file failed.
    Failed(String),
}

impl Refused {
    pub fn text(&self) -> String {
        match self {
            Refused::Done => "Setup is done: a superadmin exists. Log in.".into(),
            Refused::NoCode => "No setup code is waiting. Run `mxguard setup-code` on the node (the appliance prints one at boot).".into(),
            Refused::WrongCode => "That is not the setup code shown on the node's console.".into(),
            Refused::Account(e) => e.clone(),
            Refused::Failed(e) => format!("The account database failed: {e}"),
        }
    }
}

/// The code's file: where the digest of the newest code waits.
#[derive(Debug, Clone)]
pub struct SetupCode {
    path: PathBuf,
}

/// A code as typed: upper case, without the dashes and spaces it is shown or typed with.
fn normalized(code: &str) -> String {
    code.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).flat_map(char::to_uppercase).collect()
}

fn digest(code: &str) -> String {
    crate::users::sha256_hex(&normalized(code))
}

impl SetupCode {
    pub fn new(path: impl Into<PathBuf>) -> SetupCode {
        SetupCode { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a code waits to be spent (the login page then points to `/setup`).
    pub fn pending(&self) -> bool {
        self.path.is_file()
    }

    /// A new code, replacing any earlier one; `None` (and no code file) when a superadmin exists.
    pub fn issue(&self, users: &mut Users) -> Result<Option<String>, String> {
        if users.has_superadmin().map_err(|e| e.to_string())? {
            self.remove()?;
            return Ok(None);
        }
        let mut raw = [0u8; LENGTH];
        ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| "no randomness for the setup code".to_string())?;
        let chars: String = raw.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect();
        let code = format!("{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12]);
        // Written beside and renamed over (a torn file is never read), its owner's only.
        crate::settings::replace_private_file(&self.path, &format!("{}\n", digest(&code)))?;
        Ok(Some(code))
    }

    /// Makes `account` (a login; its role is set to superadmin) the superadmin with `password`,
    /// if `code` is the one waiting and no superadmin exists; the code is then spent.
    pub fn spend(&self, users: &mut Users, code: &str, login: &str, password: &str) -> Result<Account, Refused> {
        if users.has_superadmin().map_err(|e| Refused::Failed(e.to_string()))? {
            return Err(Refused::Done);
        }
        let stored = match std::fs::read_to_string(&self.path) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refused::NoCode),
            Err(e) => return Err(Refused::Failed(format!("{}: {e}", self.path.display()))),
        };
        if stored.is_empty() || !crate::sessions::same(&stored, &digest(code)) {
            return Err(Refused::WrongCode);
        }
        let account = Account { email: login.trim().to_ascii_lowercase(), role: Role::Superadmin, domains: Vec::new(), members: Vec::new() };
        if password.is_empty() {
            return Err(Refused::Account("The superadmin needs a password.".into()));
        }
        users.put(&account, password).map_err(Refused::Account)?;
        // The account exists now, so the code is dead even if its file stayed (`has_superadmin`
        // above); removing it is tidiness, and a failure to remove is not the user's error.
        let _ = self.remove();
        Ok(account)
    }

    fn remove(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", self.path.display())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_quarantine::db::Location;

    /// A fresh directory for one test, and the accounts' SQLite database in it.
    fn setup(name: &str) -> (PathBuf, Users) {
        let d = std::env::temp_dir().join(format!("mxg-setup-code-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let u = Users::open(&Location::Sqlite(d.join("console.db"))).unwrap();
        (d, u)
    }

    #[test]
    fn a_code_makes_one_superadmin_once() {
        let (dir, mut u) = setup("once");
        let sc = SetupCode::new(dir.join("setup-code"));
        assert_eq!(sc.spend(&mut u, "AAAA-BBBB-CCCC", "root@example.test", "long enough").unwrap_err(), Refused::NoCode);

        let first = sc.issue(&mut u).unwrap().unwrap();
        let code = sc.issue(&mut u).unwrap().unwrap();
        assert_ne!(first, code, "each issue is a new code");
        assert!(sc.pending());
        assert_eq!(code.len(), 14);
        assert!(code.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))), "{code}");
        let mode = std::fs::metadata(sc.path()).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        assert!(!std::fs::read_to_string(sc.path()).unwrap().contains(&normalized(&code)), "only the digest is kept");

        // Only the newest code; a short password leaves it valid.
        assert_eq!(sc.spend(&mut u, &first, "root", "long enough").unwrap_err(), Refused::WrongCode);
        assert!(matches!(sc.spend(&mut u, &code, "root", "short"), Err(Refused::Account(_))));
        // Typed in lower case, without dashes, with spaces: the same code.
        let typed = normalized(&code).to_lowercase();
        let typed = format!("{} {}", &typed[..6], &typed[6..]);
        let a = sc.spend(&mut u, &typed, " Root ", "long enough").unwrap();
        assert_eq!((a.email.as_str(), a.role), ("root", Role::Superadmin));
        assert!(u.verify("root", "long enough").unwrap().is_some());
        assert!(!sc.pending(), "spent");

        // Once a superadmin exists: no code is issued, and none is taken.
        assert_eq!(sc.spend(&mut u, &code, "other", "long enough").unwrap_err(), Refused::Done);
        assert_eq!(sc.issue(&mut u).unwrap(), None);
        assert!(!sc.pending());
        assert!(u.get("other").unwrap().is_none());
    }

    #[test]
    fn a_superadmin_made_otherwise_ends_setup() {
        let (dir, mut u) = setup("otherwise");
        let sc = SetupCode::new(dir.join("setup-code"));
        // Another account is not a superadmin: setup is still open.
        u.put(&Account::user("ann@example.test"), "long enough").unwrap();
        let code = sc.issue(&mut u).unwrap().unwrap();
        // A superadmin from the command line or the seed: the waiting code is dead.
        u.put(&Account { email: "boss".into(), role: Role::Superadmin, domains: vec![], members: vec![] }, "long enough").unwrap();
        assert_eq!(sc.spend(&mut u, &code, "x", "long enough").unwrap_err(), Refused::Done);
        assert_eq!(sc.issue(&mut u).unwrap(), None);
        assert!(!sc.pending());
    }
}
