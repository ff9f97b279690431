//! Manual pages in roff (man(7) macros), written from structured text: the knob registry gives
//! `mxguard.conf(5)` ([`conf_page`]); the binaries give `mxguard(8)` and `mxblast(1)` from their
//! own command tables, so a page can never disagree with `--help` or with the registry.
//!
//! Text is escaped for roff (backslashes, leading dots and quotes, hyphens in options); nothing
//! here formats for a terminal: `man` does that.

use crate::{Kind, ALL};

/// One manual page.
pub struct Page<'a> {
    pub name: &'a str,
    pub section: u8,
    /// The one line after the name in NAME.
    pub summary: &'a str,
    pub sections: Vec<Section>,
}

/// A heading and its paragraphs; an item with a tag is an indented paragraph under its tag.
pub struct Section {
    pub heading: String,
    pub items: Vec<Item>,
}

pub enum Item {
    Text(String),
    /// Literal lines, kept as written (no filling).
    Lines(String),
    Tagged(String, String),
}

/// Escapes text for roff: backslash, a control character at a line's start, and `-` (so options
/// print as hyphens, not dashes); a comma not followed by a space may break the line.
pub fn escape(text: &str) -> String {
    let mut s = text.replace('\\', "\\e").replace('-', "\\-");
    // A long list (`exe,scr,pif,...`) may break after any comma: `\:` is a break point of no width.
    s = s.replace(',', ",\\:").replace(",\\: ", ", ").replace(",\\:\n", ",\n");
    if s.ends_with(",\\:") {
        s.truncate(s.len() - 2);
    }
    s.lines()
        .map(|l| if l.starts_with('.') || l.starts_with('\'') { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Page<'_> {
    pub fn render(&self, version: &str) -> String {
        let mut s = format!(
            ".\\\" Generated from mxguard's own tables; do not edit.\n.TH \"{}\" \"{}\" \"\" \"mxguard {version}\" \"mxguard\"\n.ad l\n.SH NAME\n{} \\- {}\n",
            self.name.to_uppercase(),
            self.section,
            escape(self.name),
            escape(self.summary)
        );
        for sec in &self.sections {
            s.push_str(&format!(".SH \"{}\"\n", sec.heading.to_uppercase()));
            for item in &sec.items {
                match item {
                    Item::Text(t) => s.push_str(&format!(".PP\n{}\n", escape(t))),
                    Item::Lines(t) => s.push_str(&format!(".PP\n.nf\n{}\n.fi\n", escape(t))),
                    Item::Tagged(tag, t) => s.push_str(&format!(".TP\n.B {}\n{}\n", escape(tag), escape(t))),
                }
            }
        }
        s
    }
}

fn range(k: &crate::Knob) -> String {
    match k.kind {
        Kind::Int { min, max } => format!("an integer from {min} to {max}"),
        Kind::Float { min, max } => format!("a number from {min} to {max}"),
        Kind::Bool => "0 or 1".into(),
        Kind::Str => "text".into(),
    }
}

/// `mxguard.conf(5)`: the file's syntax and every knob of the registry, grouped by prefix.
pub fn conf_page() -> Page<'static> {
    let mut sections = vec![
        Section {
            heading: "Description".into(),
            items: vec![
                Item::Text("mxguard reads its configuration from files given with --config (the packaged service reads /etc/mxguard/mxguard.conf) and from --set name=value arguments, applied in order: a later value wins. Each line of a file is name = value; blank lines and lines starting with # are ignored. An unknown name or a value out of range stops the start with the file, line and reason, and nothing of that file is applied.".into()),
                Item::Text("Knobs marked live may be changed while the gateway runs, with mxguard sysctl name=value; the others are read at start only. Every knob below is listed with its default.".into()),
            ],
        },
    ];
    let mut current = "";
    for k in ALL {
        let prefix = k.name.split('.').next().unwrap_or("");
        if prefix != current {
            sections.push(Section { heading: format!("Knobs: {prefix}"), items: Vec::new() });
            current = prefix;
        }
        let default = if k.default.is_empty() { "empty".to_string() } else { k.default.to_string() };
        // The default goes in the paragraph, where a long one (a list) can be filled and broken.
        let tag = k.name.to_string();
        let text = format!("{} Default: {default} ({}; {}.)", k.doc, range(k), if k.live { "live" } else { "read at start" });
        if let Some(s) = sections.last_mut() {
            s.items.push(Item::Tagged(tag, text));
        }
    }
    sections.push(Section {
        heading: "Files".into(),
        items: vec![Item::Tagged("/etc/mxguard/mxguard.conf".into(), "The packaged service's configuration: every knob commented out at its default.".into())],
    });
    sections.push(Section { heading: "See also".into(), items: vec![Item::Text("mxguard(8), mxblast(1)".into())] });
    Page { name: "mxguard.conf", section: 5, summary: "configuration of the mxguard mail gateway", sections }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_has_its_entry_and_text_is_escaped() {
        let page = conf_page().render("0.0.0");
        for k in ALL {
            assert!(page.contains(&format!(".B {}\n", escape(k.name))), "{}", k.name);
        }
        assert_eq!(escape(".start\n'quote\na-b c\\d"), "\\&.start\n\\&'quote\na\\-b c\\ed");
        assert_eq!(escape("exe,scr, pif,"), "exe,\\:scr, pif,");
        // No line of the page starts with a dot that is not a macro we wrote.
        for line in page.lines().filter(|l| l.starts_with('.')) {
            let m = line.split_whitespace().next().unwrap_or("");
            assert!([".\\\"", ".TH", ".ad", ".SH", ".PP", ".TP", ".B", ".nf", ".fi"].contains(&m), "{line}");
        }
    }
}
