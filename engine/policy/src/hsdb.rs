//! One compiled hyperscan block database and its scratch pool: the lists' wildcard/regex
//! entries and the content scanner's rule sets both compile through it.
//!
//! Compiling is the slow part (milliseconds to seconds for thousands of patterns) and happens
//! off the request path, when rule files load. Scanning is one pass over the text whatever the
//! number of patterns. Scratch space is taken from a small pool (one per concurrent scanner, so
//! in practice one per core) and given back; a scan never allocates once the pool is warm.
//! A compile error names the pattern (its index) so the caller can say `file:line`; when one
//! fails, every pattern is then checked on its own (`hs_expression_info`, a parse without a
//! build) so that all the bad ones are named at once, not one a reload. The success path pays
//! nothing for that.

use std::sync::Mutex;

use hyperscan::prelude::*;

/// A pattern to compile: expression and flags.
pub struct Expr {
    pub expression: String,
    pub flags: CompileFlags,
}

pub struct Db {
    db: BlockDatabase,
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Compiles `exprs` (id = index). Err: for each bad expression found, its index if known and
    /// the message (never empty).
    pub fn compile<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> Result<Db, Vec<(Option<usize>, String)>> {
        let patterns: hyperscan::Patterns = exprs
            .into_iter()
            .enumerate()
            .map(|(i, e)| Pattern {
                expression: e.expression.clone(),
                flags: e.flags,
                id: Some(i),
                ext: hyperscan::ExpressionExt::default(),
                som: None,
            })
            .collect();
        let built: Result<BlockDatabase, _> = patterns.build();
        match built {
            Ok(db) => Ok(Db { db, scratch: Mutex::new(Vec::new()) }),
            Err(hyperscan::Error::Hyperscan(hyperscan::HsError::CompileError(ce))) => {
                // The build names the first bad expression only: parse each for the others.
                let mut bad: Vec<(Option<usize>, String)> = patterns
                    .0
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| match p.info() {
                        Ok(_) => None,
                        Err(hyperscan::Error::Hyperscan(hyperscan::HsError::CompileError(e))) => Some((Some(i), e.message().to_string())),
                        Err(e) => Some((Some(i), e.to_string())),
                    })
                    .collect();
                // A failure only the whole build sees (a resource limit, or one the parse
                // accepts): the build's own report.
                let first = (ce.expression(), ce.message().to_string());
                if !bad.iter().any(|b| b.0 == first.0) {
                    bad.insert(0, first);
                }
                Err(bad)
            }
            Err(e) => Err(vec![(None, e.to_string())]),
        }
    }

    /// Calls `hit(id)` for every pattern matching `text` (once per pattern when compiled with
    /// `SINGLEMATCH`).
    pub fn scan(&self, text: &[u8], mut hit: impl FnMut(u32)) {
        let scratch = match self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(s) => s,
            None => match self.db.alloc_scratch() {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let _ = self.db.scan(text, &scratch, |id, _from, _to, _flags| {
            hit(id);
            Matching::Continue
        });
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
    }
}

/// Escapes a literal for a hyperscan expression.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == ' ' || !c.is_ascii() {
            out.push(c);
        } else {
            // \xHH for every ASCII punctuation: always a literal to hyperscan.
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}
