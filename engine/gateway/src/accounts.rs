//! Console accounts from the command line (the first superadmin, provisioning scripts):
//!
//! ```text
//! mxguard user add LOGIN [--role R] [--domains a.example,b.example] [--members u@a.example,...] [--password-hash]
//! mxguard user token LOGIN [--label TEXT]
//! mxguard user hash
//! mxguard setup-code
//! ```
//!
//! `add` creates or replaces an account in the console database (`console.db`, a SQLite file or
//! the shared PostgreSQL); the password is read from the first line of standard input (never
//! from the command line, where `ps` would show it), or with `--password-hash` its Argon2id PHC
//! string (as an appliance seed gives it). `token` prints a new API token acting as LOGIN (shown
//! once; stored hashed). `hash` prints the PHC string of the password on standard input, for a
//! seed. `setup-code` prints a new one-time code for the console's `/setup` page while no
//! superadmin exists (nothing once one does; `mxguard_console::setup_code`). Safe while the
//! gateway runs (the database serialises the writers).

use std::io::BufRead;

use mxguard_console::setup_code::{self, SetupCode};
use mxguard_console::users::{self, Account, Role, Users};
use mxguard_tuning as k;

fn list(s: String) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect()
}

/// The first line of standard input, without its line end.
fn stdin_line(what: &str) -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the {what}: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn open_users() -> Result<(Users, String), String> {
    let loc = mxguard_quarantine::Location::parse(&k::CONSOLE_DB.get_str(), &crate::state_dir());
    let users = Users::open(&loc).map_err(|e| format!("{}: {e}", loc.describe()))?;
    Ok((users, loc.describe()))
}

/// `mxguard setup-code`: a new one-time code on standard output while no superadmin exists;
/// nothing (and no code waiting) once one does.
pub fn setup_code_command(args: Vec<String>) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: mxguard setup-code".into());
    }
    let (mut users, _) = open_users()?;
    if let Some(code) = SetupCode::new(crate::state_dir().join(setup_code::FILE)).issue(&mut users)? {
        crate::out(&code);
    }
    Ok(())
}

pub fn user_command(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: mxguard user add LOGIN [--role user|technician|subadmin|domain-admin|superadmin] [--domains a.example,...] [--members u@a.example,...] [--password-hash]  (password or its hash on stdin)\n       mxguard user token LOGIN [--label TEXT]\n       mxguard user hash  (password on stdin)";
    let mut it = args.into_iter();
    let verb = it.next().ok_or(usage)?;
    if verb == "hash" {
        if it.next().is_some() {
            return Err(usage.into());
        }
        crate::out(&users::hash_password(&stdin_line("password")?)?);
        return Ok(());
    }
    let login = it.next().ok_or(usage)?.trim().to_ascii_lowercase();
    let (mut users, where_) = open_users()?;
    match verb.as_str() {
        "add" => {
            let mut a = Account { email: login.clone(), role: Role::User, domains: Vec::new(), members: Vec::new() };
            let mut given_hash = false;
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "--role" => a.role = it.next().as_deref().and_then(Role::parse).ok_or(usage)?,
                    "--domains" => a.domains = list(it.next().ok_or(usage)?),
                    "--members" => a.members = list(it.next().ok_or(usage)?),
                    "--password-hash" => given_hash = true,
                    _ => return Err(usage.into()),
                }
            }
            if matches!(a.role, Role::DomainAdmin | Role::Technician | Role::Subadmin) && a.domains.is_empty() {
                return Err(format!("a {} needs --domains", a.role.as_str()));
            }
            if given_hash {
                users.put_hash(&a, &stdin_line("password hash")?)?;
            } else {
                users.put(&a, &stdin_line("password")?)?;
            }
            println!("account {login} ({}) saved in {where_}", a.role.as_str());
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
