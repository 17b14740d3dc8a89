//! `$regex` for PostgreSQL: the `regex` crate's meaning, written in PostgreSQL's regular
//! expression dialect (Spencer's ARE).
//!
//! The two dialects disagree in many places: `.` and `$` around newlines, what `\w`, `\d`,
//! `\s` and case-insensitive matching cover outside ASCII (PostgreSQL asks the database's
//! locale), word boundaries, the bound on counted repetition. So the pattern is not
//! passed on: it is parsed with `regex-syntax` (the `regex` crate's own parser, with the
//! same flags), whose high-level form has every flag applied already, and that form is
//! written out with only the parts of ARE whose meaning does not depend on anything:
//! explicit characters (escaped as `\uXXXX` or `\UXXXXXXXX` unless ASCII letters or
//! digits), bracket expressions of explicit code-point ranges, non-capturing groups,
//! alternation, greedy repetition (greediness does not change *whether* a pattern
//! matches, which is all `~` asks), `\A`, `\Z`, and look-arounds for line anchors and
//! word boundaries. Case-insensitivity is already expanded into classes (`k` becomes
//! `[Kk\u212A]`), so no flag is passed to PostgreSQL.
//!
//! Refused (the error names the reason): counted repetition above 255, CRLF-mode anchors,
//! classes of non-ASCII bytes, and translations longer than [`MAX_LEN`] bytes.

use std::fmt::Write as _;
use std::sync::OnceLock;

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::RegexCond;

/// The longest translation sent to PostgreSQL: a Unicode `\w` alone is about 9 KiB.
pub(crate) const MAX_LEN: usize = 256 << 10;

/// PostgreSQL's bound on `{m,n}` (`RE_DUP_MAX`).
const MAX_REPEAT: u32 = 255;

/// A pattern that matches nothing.
const NOTHING: &str = "(?!)";

/// The ARE for `r`, or why it cannot be written.
pub(crate) fn translate(r: &RegexCond) -> Result<String, &'static str> {
    let o = r.options();
    let hir = ParserBuilder::new()
        .case_insensitive(o.case_insensitive)
        .multi_line(o.multi_line)
        .dot_matches_new_line(o.dot_all)
        .ignore_whitespace(o.extended)
        .build()
        .parse(r.pattern())
        .map_err(|_| "the pattern does not parse")?;
    let mut out = String::new();
    write_hir(&mut out, &hir)?;
    if out.len() > MAX_LEN {
        return Err("the pattern's PostgreSQL translation is longer than 256 KiB");
    }
    Ok(out)
}

fn write_hir(out: &mut String, hir: &Hir) -> Result<(), &'static str> {
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(lit) => {
            let text =
                std::str::from_utf8(&lit.0).map_err(|_| "the pattern matches bytes that are not UTF-8")?;
            text.chars().for_each(|c| write_char(out, c));
        }
        HirKind::Class(Class::Unicode(class)) => {
            write_class(out, class.ranges().iter().map(|r| (u32::from(r.start()), u32::from(r.end()))));
        }
        HirKind::Class(Class::Bytes(class)) => {
            if class.ranges().iter().any(|r| r.end() > 0x7f) {
                return Err("the pattern has a class of non-ASCII bytes");
            }
            write_class(out, class.ranges().iter().map(|r| (u32::from(r.start()), u32::from(r.end()))));
        }
        HirKind::Look(look) => write_look(out, *look)?,
        HirKind::Repetition(rep) => {
            if rep.min > MAX_REPEAT || rep.max.is_some_and(|m| m > MAX_REPEAT) {
                return Err("PostgreSQL cannot count repetitions above 255");
            }
            out.push_str("(?:");
            write_hir(out, &rep.sub)?;
            out.push(')');
            let _ = match (rep.min, rep.max) {
                (0, None) => write!(out, "*"),
                (1, None) => write!(out, "+"),
                (0, Some(1)) => write!(out, "?"),
                (m, None) => write!(out, "{{{m},}}"),
                (m, Some(n)) if m == n => write!(out, "{{{m}}}"),
                (m, Some(n)) => write!(out, "{{{m},{n}}}"),
            };
        }
        HirKind::Capture(cap) => {
            out.push_str("(?:");
            write_hir(out, &cap.sub)?;
            out.push(')');
        }
        HirKind::Concat(subs) => {
            for sub in subs {
                write_hir(out, sub)?;
            }
        }
        HirKind::Alternation(subs) => {
            out.push_str("(?:");
            for (i, sub) in subs.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write_hir(out, sub)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// One character outside a bracket expression.
fn write_char(out: &mut String, c: char) {
    if c == '\0' {
        // PostgreSQL text cannot hold U+0000, so a pattern that needs one never matches.
        out.push_str(NOTHING);
    } else if c.is_ascii_punctuation() {
        // A backslash before a non-alphanumeric character stands for the character.
        out.push('\\');
        out.push(c);
    } else {
        write_code(out, c);
    }
}

/// One character, as itself when it is an ASCII letter or digit, else as an escape
/// that means that code point in and out of brackets.
fn write_code(out: &mut String, c: char) {
    let _ = if c.is_ascii_alphanumeric() {
        write!(out, "{c}")
    } else if u32::from(c) <= 0xffff {
        write!(out, "\\u{:04X}", u32::from(c))
    } else {
        write!(out, "\\U{:08X}", u32::from(c))
    };
}

/// A class as a bracket expression of code-point ranges, without U+0000 (which
/// PostgreSQL text never holds).
fn write_class(out: &mut String, ranges: impl Iterator<Item = (u32, u32)>) {
    let ranges: Vec<(char, char)> = ranges
        .map(|(lo, hi)| (lo.max(1), hi))
        .filter(|(lo, hi)| lo <= hi)
        .filter_map(|(lo, hi)| Some((char::from_u32(lo)?, char::from_u32(hi)?)))
        .collect();
    match ranges.as_slice() {
        [] => out.push_str(NOTHING),
        [(lo, hi)] if lo == hi => write_char(out, *lo),
        _ => {
            out.push('[');
            for (lo, hi) in ranges {
                write_code(out, lo);
                if hi != lo {
                    out.push('-');
                    write_code(out, hi);
                }
            }
            out.push(']');
        }
    }
}

fn write_look(out: &mut String, look: Look) -> Result<(), &'static str> {
    let fixed = match look {
        Look::Start => Some("\\A"),
        Look::End => Some("\\Z"),
        Look::StartLF => Some("(?:\\A|(?<=\\n))"),
        Look::EndLF => Some("(?:\\Z|(?=\\n))"),
        Look::StartCRLF | Look::EndCRLF => return Err("CRLF-mode anchors ((?R)) are not translated"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        out.push_str(fixed);
        return Ok(());
    }
    let ascii = || "[0-9A-Z_a-z]".to_owned();
    let (w, shape) = match look {
        Look::WordAscii => (ascii(), Word::Boundary),
        Look::WordAsciiNegate => (ascii(), Word::NotBoundary),
        Look::WordStartAscii => (ascii(), Word::Start),
        Look::WordEndAscii => (ascii(), Word::End),
        Look::WordStartHalfAscii => (ascii(), Word::StartHalf),
        Look::WordEndHalfAscii => (ascii(), Word::EndHalf),
        Look::WordUnicode => (unicode_word().to_owned(), Word::Boundary),
        Look::WordUnicodeNegate => (unicode_word().to_owned(), Word::NotBoundary),
        Look::WordStartUnicode => (unicode_word().to_owned(), Word::Start),
        Look::WordEndUnicode => (unicode_word().to_owned(), Word::End),
        Look::WordStartHalfUnicode => (unicode_word().to_owned(), Word::StartHalf),
        Look::WordEndHalfUnicode => (unicode_word().to_owned(), Word::EndHalf),
        Look::Start | Look::End | Look::StartLF | Look::EndLF | Look::StartCRLF | Look::EndCRLF => {
            return Ok(());
        }
    };
    // Before the start and after the end of the text there is no word character, which
    // is what a failing look-behind (look-ahead) says there.
    let _ = match shape {
        Word::Boundary => write!(out, "(?:(?<={w})(?!{w})|(?<!{w})(?={w}))"),
        Word::NotBoundary => write!(out, "(?:(?<={w})(?={w})|(?<!{w})(?!{w}))"),
        Word::Start => write!(out, "(?<!{w})(?={w})"),
        Word::End => write!(out, "(?<={w})(?!{w})"),
        Word::StartHalf => write!(out, "(?<!{w})"),
        Word::EndHalf => write!(out, "(?!{w})"),
    };
    Ok(())
}

enum Word {
    Boundary,
    NotBoundary,
    Start,
    End,
    StartHalf,
    EndHalf,
}

/// The `regex` crate's Unicode `\w`, as a bracket expression.
fn unicode_word() -> &'static str {
    static WORD: OnceLock<String> = OnceLock::new();
    WORD.get_or_init(|| {
        let mut out = String::new();
        if let Ok(hir) = ParserBuilder::new().build().parse(r"\w") {
            // Infallible: `\w` is a class.
            let _ = write_hir(&mut out, &hir);
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Filter;
    use serde_json::json;

    fn are(pattern: &str, options: &str) -> Result<String, &'static str> {
        let f = Filter::parse(&json!({"a": {"$regex": pattern, "$options": options}})).unwrap();
        let crate::Expr::Field { conds, .. } = f.expr() else { panic!("a field") };
        let crate::Cond::Regex(r) = &conds[0] else { panic!("a regex") };
        translate(r)
    }

    #[test]
    fn literals_anchors_and_classes() {
        assert_eq!(are("^ab.c$", "").unwrap(), "\\Aab[\\u0001-\\u0009\\u000B-\\U0010FFFF]c\\Z");
        assert_eq!(are("a|b+", "").unwrap(), "(?:a|(?:b)+)");
        assert_eq!(are("x{2,3}(y)?", "").unwrap(), "(?:x){2,3}(?:(?:y))?");
        assert_eq!(are("^a", "m").unwrap(), "(?:\\A|(?<=\\n))a");
        assert_eq!(are("k", "i").unwrap(), "[Kk\\u212A]");
        assert_eq!(are("[^\\x00-\\x{10FFFF}]", "").unwrap(), NOTHING);
        assert_eq!(are("a.b", "s").unwrap(), "a[\\u0001-\\U0010FFFF]b");
        assert_eq!(are("\\$ \\.", "").unwrap(), "\\$\\u0020\\.");
        assert!(are("\\bx", "").unwrap().starts_with("(?:(?<=["));
        assert!(are("(?-u:\\b)x", "").unwrap().contains("(?<=[0-9A-Z_a-z])"));
    }

    #[test]
    fn what_postgresql_cannot_say_is_refused() {
        assert!(are("a{256}", "").is_err());
        assert!(are("a{2,300}", "").is_err());
        assert!(are("(?R)^a", "m").is_err());
        assert!(are("a{255}", "").is_ok());
    }
}
