//! Generated documentation: `tuning/KNOBS.md` and the commented `tuning/mxguard.conf`.
//!
//! Both are rendered from the registry only; the test below fails when the checked-in copies are
//! stale (run with `MXGUARD_BLESS=1` to rewrite them).

use crate::{Kind, ALL};

fn range(k: &crate::Knob) -> String {
    match k.kind {
        Kind::Int { min, max } => format!("{min} ..= {max}"),
        Kind::Float { min, max } => format!("{min} ..= {max} (decimal)"),
        Kind::Bool => "0 / 1".into(),
        Kind::Str => "text".into(),
    }
}

/// `tuning/KNOBS.md`.
pub fn markdown() -> String {
    let mut s = String::from(
        "# mxguard knobs\n\nGenerated from `engine/tuning/src/registry.rs` by `mxguard sysctl --markdown`; do not edit.\n\
         Set them in a config file (`name = value`, see `mxguard.conf`) or live with `mxguard sysctl name=value`;\n\
         knobs marked *restart* are read at start-up only.\n\n\
         | knob | default | range | change | doc |\n|---|---|---|---|---|\n",
    );
    for k in ALL {
        let default = if k.default.is_empty() { "*(empty)*".to_string() } else { format!("`{}`", k.default) };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.name,
            default,
            range(k),
            if k.live { "live" } else { "restart" },
            k.doc.replace('|', "\\|")
        ));
    }
    s
}

/// `tuning/mxguard.conf`: every knob, commented out at its default, with its doc.
pub fn conf() -> String {
    let mut s = String::from(
        "# mxguard configuration: every knob at its default (generated; see KNOBS.md).\n\
         # Copy to /etc/mxguard/mxguard.conf or pass with --config, and uncomment what you change.\n",
    );
    let mut section = "";
    for k in ALL {
        let sec = k.name.split('.').next().unwrap_or("");
        if sec != section {
            s.push_str(&format!("\n# ---- {sec} ----\n"));
            section = sec;
        }
        s.push_str(&format!(
            "# {} [{}{}]\n# {} = {}\n",
            k.doc,
            range(k),
            if k.live { "" } else { ", restart" },
            k.name,
            k.default
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn check(file: &str, want: String) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tuning").join(file);
        if std::env::var_os("MXGUARD_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "tuning/{file} is stale: regenerate with `MXGUARD_BLESS=1 cargo test -p mxguard-tuning`"
        );
    }

    #[test]
    fn knobs_md_is_current() {
        check("KNOBS.md", super::markdown());
    }

    #[test]
    fn mxguard_conf_is_current() {
        check("mxguard.conf", super::conf());
    }
}
