//! `mxguard manpage`: the manual pages, `mxguard(8)` from the command table `--help` prints and
//! `mxguard.conf(5)` from the knob registry (mxguard_tuning::manpage), in roff on stdout. The
//! Debian package's build writes them with this command.

use mxguard_tuning::manpage::{conf_page, Item, Page, Section};

/// `mxguard(8)`.
fn gateway_page() -> Page<'static> {
    let mut commands = Vec::new();
    for (_, text) in crate::COMMANDS {
        // Each entry: a usage line, then its description indented by six spaces; maybe more pairs.
        let mut usage: Option<String> = None;
        for line in text.lines() {
            if let Some(desc) = line.strip_prefix("      ") {
                if let Some(u) = usage.take() {
                    commands.push(Item::Tagged(u, desc.trim().to_string()));
                }
            } else {
                usage = Some(line.trim().to_string());
            }
        }
    }
    Page {
        name: "mxguard",
        section: 8,
        summary: "spam and malware filtering SMTP gateway",
        sections: vec![
            Section {
                heading: "Description".into(),
                items: vec![
                    Item::Text("mxguard takes SMTP sessions in front of an organisation's mail servers, decides for each message (reject, quarantine, tag, deliver or drop) from its policy checks (lists, DNS blocklists, SPF, DKIM, DMARC, greylisting, rates) and its content (rules, links, attachments, ClamAV, pictures, Bayes, learned weights), and relays clean mail to the servers behind it. Accepted mail is on disk (fsync'd) before 250 is answered.".into()),
                    Item::Text("Without a command it runs the gateway. Its knobs come from --config files and --set arguments (mxguard.conf(5)); a running gateway is inspected and changed with mxguard sysctl.".into()),
                ],
            },
            Section { heading: "Commands".into(), items: commands },
            Section {
                heading: "Signals".into(),
                items: vec![Item::Tagged("SIGTERM, SIGINT".into(), "Stop: listeners close, idle sessions get 421, transfers get smtp.shutdown_grace_s to finish; the spool is consistent at any moment, so a kill loses nothing acknowledged.".into())],
            },
            Section {
                heading: "Exit status".into(),
                items: vec![Item::Text("0 on success; 1 when a command fails; 2 for a usage or configuration error (the reason is printed on standard error).".into())],
            },
            Section {
                heading: "Files".into(),
                items: vec![
                    Item::Tagged("/etc/mxguard/mxguard.conf".into(), "The packaged service's configuration.".into()),
                    Item::Tagged("state.dir (the package: /var/lib/mxguard)".into(), "Spool, quarantine, Bayes and weights, greylist, accounts, list files (lists/), the admin socket.".into()),
                    Item::Tagged("log.file (the package: /var/log/mxguard/mxguard.log)".into(), "The event log, one JSON object a line.".into()),
                ],
            },
            Section { heading: "See also".into(), items: vec![Item::Text("mxguard.conf(5), mxblast(1)".into())] },
        ],
    }
}

/// `mxguard manpage [mxguard | mxguard.conf]`.
pub fn manpage_command(args: Vec<String>) -> Result<(), String> {
    let page = match args.first().map(String::as_str) {
        None | Some("mxguard") | Some("8") => gateway_page(),
        Some("mxguard.conf") | Some("5") => conf_page(),
        Some(other) => return Err(format!("no manual page {other:?} (mxguard, mxguard.conf)")),
    };
    crate::out(page.render(env!("CARGO_PKG_VERSION")).trim_end());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_is_in_the_page() {
        let page = super::gateway_page().render("0");
        for (name, _) in crate::COMMANDS {
            let tag = mxguard_tuning::manpage::escape(&format!("mxguard {name}"));
            assert!(page.contains(&format!(".B {tag}")) || *name == "run", "{name}");
        }
    }
}
