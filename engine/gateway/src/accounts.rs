//! Console accounts from the command line (the first superadmin, provisioning scripts):
//!
//! ```text
//! mxguard user add LOGIN [--role R] [--domains a.example,b.example] [--members u@a.example,...]
//! mxguard user token LOGIN [--label TEXT]
//! ```
//!
//! `add` creates or replaces an account in the console database (`console.db`, a SQLite file or
//! the shared PostgreSQL); the password is read from the first line of standard input (never
//! from the command line, where `ps` would show it). `token` prints a new API token acting as
//! LOGIN (shown once; stored hashed). Safe while the gateway runs (the database serialises the
//! writers).

use std::io::BufRead;

use mxguard_console::users::{Account, Role, Users};
use mxguard_tuning as k;

fn list(s: String) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect()
}

pub fn user_command(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: mxguard user add LOGIN [--role user|technician|subadmin|domain-admin|superadmin] [--domains a.example,...] [--members u@a.example,...]  (password on stdin)\n       mxguard user token LOGIN [--label TEXT]";
    let mut it = args.into_iter();
    let verb = it.next().ok_or(usage)?;
    let login = it.next().ok_or(usage)?.trim().to_ascii_lowercase();
    let loc = mxguard_quarantine::Location::parse(&k::CONSOLE_DB.get_str(), &crate::state_dir());
    let mut users = Users::open(&loc).map_err(|e| format!("{}: {e}", loc.describe()))?;
    match verb.as_str() {
        "add" => {
            let mut a = Account { email: login.clone(), role: Role::User, domains: Vec::new(), members: Vec::new() };
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "--role" => a.role = it.next().as_deref().and_then(Role::parse).ok_or(usage)?,
                    "--domains" => a.domains = list(it.next().ok_or(usage)?),
                    "--members" => a.members = list(it.next().ok_or(usage)?),
                    _ => return Err(usage.into()),
                }
            }
            if matches!(a.role, Role::DomainAdmin | Role::Technician | Role::Subadmin) && a.domains.is_empty() {
                return Err(format!("a {} needs --domains", a.role.as_str()));
            }
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).map_err(|e| format!("reading the password: {e}"))?;
            users.put(&a, password.trim_end_matches(['\r', '\n']))?;
            println!("account {login} ({}) saved in {}", a.role.as_str(), loc.describe());
            Ok(())
        }
        "token" => {
            let label = match (it.next().as_deref(), it.next()) {
                (Some("--label"), Some(l)) => l,
                (None, _) => String::new(),
                _ => return Err(usage.into()),
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            println!("{}", users.token_new(&login, &label, now)?);
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
