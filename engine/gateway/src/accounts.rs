//! `mxguard user add LOGIN [--role user|domain-admin|superadmin] [--domains a.example,b.example]`:
//! creates or replaces a console account in `console.db`; the password is read from the first
//! line of standard input (never from the command line, where `ps` would show it). Safe while
//! the gateway runs (SQLite serialises the writers).

use std::io::BufRead;

use mxguard_console::users::{Role, Users};
use mxguard_tuning as k;

pub fn user_command(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: mxguard user add LOGIN [--role user|domain-admin|superadmin] [--domains a.example,b.example]  (password on stdin)";
    let mut it = args.into_iter();
    if it.next().as_deref() != Some("add") {
        return Err(usage.into());
    }
    let login = it.next().ok_or(usage)?;
    let (mut role, mut domains) = (Role::User, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--role" => role = it.next().as_deref().and_then(Role::parse).ok_or(usage)?,
            "--domains" => domains = it.next().ok_or(usage)?.split(',').map(str::to_string).collect(),
            _ => return Err(usage.into()),
        }
    }
    if role == Role::DomainAdmin && domains.is_empty() {
        return Err("a domain-admin needs --domains".into());
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).map_err(|e| format!("reading the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let db = crate::in_state_dir(&k::CONSOLE_DB.get_str());
    let users = Users::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    users.put(&login, password, role, &domains)?;
    println!("account {login} ({}) saved in {}", role.as_str(), db.display());
    Ok(())
}
