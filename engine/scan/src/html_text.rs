//! The text of an HTML part: mail-parser's `html_to_text`, byte for byte the same output, found
//! faster by jumping over what cannot change it.
//!
//! mail-parser reads HTML a byte at a time through one state machine (tags, comments, the
//! hidden `head`, `style`, `script` and `template` elements, entities, white space). Most of an
//! HTML mail's bytes are tag attributes, style sheets and comments, where that machine only
//! waits for one byte: after a tag's name only `<` or `>` can change anything (a tag is judged by
//! its name alone), inside hidden elements only the `<` of the next tag, inside a comment only a
//! `>` after exactly two dashes. Here those stretches are crossed with `memchr`, and the text
//! between tags a byte at a time as mail-parser does, its words handed to mail-parser's own
//! [`add_html_token`] (entities and all). Why not call mail-parser's function: rendering HTML
//! was the largest single cost of parsing a message for learning (an eighth of it).
//!
//! Must never: produce other text than mail-parser's `html_to_text` for any input (the tests
//! and the `html_text` fuzz target compare the two), or look at a byte more than a bounded
//! number of times.

use mail_parser::decoders::html::add_html_token;

/// The text of `input` as mail-parser's `html_to_text` gives it.
pub fn html_to_text(input: &str) -> String {
    let mut m = Machine { result: String::with_capacity(input.len()), ..Machine::default() };
    let b = input.as_bytes();
    let mut pos = 0;
    while pos < b.len() {
        if m.in_comment {
            // A comment ends at a `>` after exactly two dashes counted from its start.
            pos = m.comment_end(b, pos);
            continue;
        }
        if m.in_tag && m.tag_token_pos >= 2 {
            // Past the tag's name: nothing but its end or a new tag changes anything.
            match memchr::memchr2(b'<', b'>', &b[pos..]) {
                Some(p) => pos += p,
                None => break,
            }
        } else if !m.in_tag && m.hidden() {
            // Inside head, style, script or template: up to the next tag.
            match memchr::memchr(b'<', &b[pos..]) {
                Some(p) => pos += p,
                None => break,
            }
        }
        m.step(b, pos);
        pos += 1;
    }
    m.finish(b)
}

/// mail-parser's state, field for field.
#[derive(Default)]
struct Machine {
    result: String,
    in_tag: bool,
    in_head: bool,
    in_style: bool,
    in_script: bool,
    in_template: bool,
    in_comment: bool,
    /// Inverted from mail-parser's `is_token_start`, which begins true.
    in_token: bool,
    is_after_space: bool,
    is_tag_close: bool,
    /// Inverted from mail-parser's `is_new_line`, which begins true.
    written_line: bool,
    token_start: usize,
    token_end: usize,
    tag_token_pos: usize,
}

impl Machine {
    fn hidden(&self) -> bool {
        self.in_head || self.in_style || self.in_script || self.in_template
    }

    fn emit(&mut self, b: &[u8], end: usize, space: bool) {
        add_html_token(&mut self.result, &b[self.token_start..=end], space);
    }

    /// One byte outside a comment, exactly as mail-parser's loop takes it.
    fn step(&mut self, b: &[u8], pos: usize) {
        let ch = b[pos];
        match ch {
            b'<' => {
                if !self.in_tag && !self.hidden() && self.in_token {
                    self.emit(b, self.token_end, self.is_after_space);
                    self.is_after_space = false;
                }
                self.tag_token_pos = 0;
                self.in_tag = true;
                self.in_token = false;
                self.is_tag_close = false;
                return;
            }
            b'>' if self.in_tag => {
                if self.tag_token_pos == 1 {
                    match b.get(self.token_start..self.token_end + 1) {
                        Some(tag) if tag.eq_ignore_ascii_case(b"br") || (tag.eq_ignore_ascii_case(b"p") && self.is_tag_close) => {
                            self.result.push('\n');
                            self.is_after_space = false;
                            self.written_line = false;
                        }
                        Some(tag) if tag.eq_ignore_ascii_case(b"head") => self.in_head = !self.is_tag_close,
                        Some(tag) if tag.eq_ignore_ascii_case(b"style") => self.in_style = !self.is_tag_close,
                        Some(tag) if tag.eq_ignore_ascii_case(b"script") => self.in_script = !self.is_tag_close,
                        Some(tag) if tag.eq_ignore_ascii_case(b"template") => self.in_template = !self.is_tag_close,
                        _ => {}
                    }
                }
                self.in_tag = false;
                self.in_token = false;
                return;
            }
            b'/' if self.in_tag => {
                if self.tag_token_pos == 0 {
                    self.is_tag_close = true;
                }
                return;
            }
            b'!' if self.in_tag && self.tag_token_pos == 0 => {
                if let Some(b"--") = b.get(pos + 1..pos + 3) {
                    self.in_comment = true;
                    return;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {
                if !self.in_tag && !self.hidden() {
                    if self.in_token {
                        self.emit(b, self.token_end, self.is_after_space && self.written_line);
                        self.written_line = true;
                    }
                    self.is_after_space = true;
                }
                self.in_token = false;
                return;
            }
            b'&' if !self.in_tag && self.in_token && !self.in_head => {
                if self.in_style || self.in_script || self.in_template {
                    return;
                }
                self.emit(b, self.token_end, self.is_after_space && self.written_line);
                self.written_line = true;
                self.in_token = false;
                self.is_after_space = false;
            }
            b';' if !self.in_tag && self.in_token && !self.in_head => {
                if self.in_style || self.in_script || self.in_template {
                    return;
                }
                self.emit(b, pos, self.is_after_space && self.written_line);
                self.in_token = false;
                self.is_after_space = false;
                self.written_line = true;
                return;
            }
            _ => {}
        }
        if !self.in_token {
            self.token_start = pos;
            self.in_token = true;
            if self.in_tag {
                self.tag_token_pos += 1;
            }
        }
        self.token_end = pos;
    }

    /// From `pos` inside a comment: past the `>` that ends it, or the end of the input.
    /// mail-parser counts the dashes in a row since the comment began or since its last other
    /// byte, and ends the comment at a `>` when the count is exactly two (`-->`, and `<!-->`,
    /// but not `--->`); any other byte, a `>` that ends nothing too, sets the count back to 0.
    /// So the count at a `>` is the run of dashes right before it, back to `pos` at most (the
    /// comment's first byte or the byte after a `>`, where the count is 0).
    fn comment_end(&mut self, b: &[u8], mut pos: usize) -> usize {
        while let Some(p) = memchr::memchr(b'>', &b[pos..]) {
            let gt = pos + p;
            if b[pos..gt].iter().rev().take_while(|c| **c == b'-').count() == 2 {
                self.in_comment = false;
                self.in_tag = false;
                self.in_token = false;
                return gt + 1;
            }
            pos = gt + 1;
        }
        // No end: the rest is comment, and mail-parser writes nothing after it.
        b.len()
    }

    fn finish(mut self, b: &[u8]) -> String {
        if !self.in_tag && self.in_token && !self.hidden() {
            self.emit(b, self.token_end, self.is_after_space && self.written_line);
        }
        self.result.shrink_to_fit();
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(html: &str) {
        assert_eq!(html_to_text(html), mail_parser::decoders::html::html_to_text(html), "{html:?}");
    }

    #[test]
    fn the_text_of_html() {
        assert_eq!(html_to_text("<p>Hello &amp; <b>world</b></p><br>next&nbsp;line"), "Hello & world\n\nnext\u{a0}line");
        assert_eq!(html_to_text("<head><title>t</title></head><style>p{}</style>a<!-- c -- -> x -->b"), "ab");
    }

    #[test]
    fn the_same_text_as_mail_parser() {
        // Pieces that meet mail-parser's machine at every state: tags with and without
        // attributes, closing and self-closing, hidden elements, comments with dash runs of
        // every length, entities complete and not, white space, text beyond ASCII.
        const PIECES: &[&str] = &[
            "<", ">", "/", "!", "-", "--", "<!--", "-->", "--->", "<!-->", "<!", "<p>", "</p>", "<br>", "<br/>", "<BR >",
            "<p class=x>", "<a href='http://x/y'>", "</a>", "<head>", "</head>", "<style>", "</style>", "<script>", "</script>",
            "<template>", "</template>", "<HEAD lang=en>", "< p>", "</ p>", "&", ";", "&amp;", "&#65;", "&#x42;", "&nbsp;", "&bogus;",
            "&amp", " ", "  ", "\n", "\r\n", "\t", "word", "caf\u{e9}", "\u{4e2d}\u{6587}", "a;b", "x&y", "=", "\"", "'",
        ];
        for html in crate::test_texts::texts(PIECES, 30, 20_000, 0x2545_f491_4f6c_dd1d) {
            same(&html);
        }
    }
}
