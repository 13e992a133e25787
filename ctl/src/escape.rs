//! Untrusted text on a terminal: file names, process names, DNS names,
//! container and run names come from whoever controls the traced machine,
//! and must not be able to move the cursor, clear the screen, retitle the
//! window or reorder the line (`ESC[2J`, OSC, CSI as the C1 byte U+009B,
//! bidirectional overrides). gadgetctl prints them escaped instead:
//!
//! * in columns, lists and messages: `\n`, `\r`, `\t`, `\e` (ESC), `\xHH`
//!   for other C0 controls and DEL, `\u{HHHH}` for C1 controls and the
//!   bidirectional and invisible formatting characters;
//! * in JSON (`-o json`): the same characters as JSON `\uHHHH` escapes, so
//!   the line is still the same JSON value (serde_json already escapes C0).
//!
//! Which characters those are is defined once, in
//! [`gadgetd_dbus::terminal`], for gadgetctl and for the agent, which
//! escapes them at the source; gadgetctl checks again for older agents.

use std::borrow::Cow;
use std::fmt::Write as _;

use gadgetd_dbus::terminal::{UNSAFE_UTF8_LEADS, is_unsafe};

/// `text` with every unsafe character escaped (see the module docs);
/// borrowed when there is nothing to escape.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// Like [`terminal`], but keeps line breaks: for multi-line messages
/// (errors from the agent) whose lines are meant as lines.
pub fn message(text: &str) -> String {
    text.split('\n')
        .map(terminal)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Appends `text` to `out`, escaped.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            '\x1b' => write!(out, "\\e"),
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:04x}}}", c as u32),
        };
    }
}

/// A JSON text with every unsafe character that serde_json leaves raw (DEL,
/// C1, bidi and invisible formatting) written as a `\uHHHH` escape; borrowed
/// when there is none, which is the common case (no allocation). Such
/// characters can only occur inside JSON strings, so the value is unchanged.
pub fn json(line: &[u8]) -> Cow<'_, [u8]> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Cow::Borrowed(line);
    };
    // Fast path: all unsafe characters beyond C0 are DEL or start with one
    // of UNSAFE_UTF8_LEADS.
    if !line
        .iter()
        .any(|&b| b == 0x7f || UNSAFE_UTF8_LEADS.contains(&b))
        || !text.chars().any(is_unsafe)
    {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out.into_bytes())
}

/// Writes a run of JSON lines (`\n`-separated) to `out`, each line as
/// [`json`] makes it. A run of plain ASCII without DEL (the common case) is
/// written with one call after two fast scans; otherwise the lines before
/// the first suspect byte go out as they are, that line is escaped, and the
/// rest is handled the same way.
pub fn write_json_lines(run: &[u8], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut rest = run;
    while let Some(suspect) = first_suspect(rest) {
        let start = memchr::memrchr(b'\n', &rest[..suspect]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &rest[suspect..]).map_or(rest.len(), |i| suspect + i);
        out.write_all(&rest[..start])?;
        out.write_all(&json(&rest[start..end]))?;
        rest = &rest[end..];
    }
    out.write_all(rest)
}

/// The first byte of `text` that may start a character [`json`] escapes:
/// DEL or any byte of a non-ASCII character.
fn first_suspect(text: &[u8]) -> Option<usize> {
    let del = memchr::memchr(0x7f, text);
    let before = &text[..del.unwrap_or(text.len())];
    if before.is_ascii() {
        return del;
    }
    before.iter().position(|&b| b >= 0x80)
}

/// A YAML document of `v` that is safe on a terminal. The serializer
/// escapes control characters but writes bidirectional and invisible
/// formatting characters as they are; a value holding one is written in flow
/// style instead (JSON, which YAML 1.2 reads), escaped as for [`json`].
pub fn yaml(v: &serde_json::Value) -> Result<Vec<u8>, serde_saphyr::SerializeError> {
    let text = serde_saphyr::to_string(v)?;
    if text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        let flow = serde_json::to_vec(v).unwrap_or_default();
        let mut out = json(&flow).into_owned();
        out.push(b'\n');
        return Ok(out);
    }
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_every_kind_of_control() {
        assert!(matches!(terminal("/etc/passwd"), Cow::Borrowed(_)));
        assert_eq!(terminal("a\x1b[2Jb"), "a\\e[2Jb");
        assert_eq!(terminal("x\ny\rz\t"), "x\\ny\\rz\\t");
        assert_eq!(terminal("\x07\x00\x7f"), "\\x07\\x00\\x7f");
        assert_eq!(terminal("\u{9b}2J"), "\\u{009b}2J");
        assert_eq!(terminal("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(terminal("zero\u{200b}width"), "zero\\u{200b}width");
        // Printable text of any script stays as it is.
        assert_eq!(terminal("日本語 ü ☃"), "日本語 ü ☃");
        assert_eq!(
            message("line one\x1b]0;t\x07\nline two"),
            "line one\\e]0;t\\x07\nline two"
        );
    }

    #[test]
    fn json_stays_the_same_value() {
        let plain = r#"{"fname":"/tmp/x \u001b[2J","comm":"ü"}"#;
        assert!(matches!(json(plain.as_bytes()), Cow::Borrowed(_)));
        let raw = "{\"fname\":\"a\u{9b}2J\u{7f}\u{202e}b\"}";
        let safe = json(raw.as_bytes());
        assert_eq!(
            std::str::from_utf8(&safe).unwrap(),
            r#"{"fname":"a\u009b2J\u007f\u202eb"}"#
        );
        let a: serde_json::Value = serde_json::from_str(raw).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&safe).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn json_lines_escape_only_the_lines_that_need_it() {
        let escaped = |run: &[u8]| {
            let mut out = Vec::new();
            write_json_lines(run, &mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(escaped(b"{\"a\":1}\n{\"b\":2}\n"), "{\"a\":1}\n{\"b\":2}\n");
        // DEL, C1, bidi and zero-width characters, each on its own line
        // between plain ones; printable non-ASCII stays as it is.
        let run = "{\"f\":\"x\"}\n{\"f\":\"a\u{7f}\"}\n{\"f\":\"\u{9b}2J\"}\n{\"f\":\"ü\"}\n\
                   {\"f\":\"evil\u{202e}txt\"}\n{\"f\":\"z\u{200b}\"}\n{\"f\":\"y\"}";
        assert_eq!(
            escaped(run.as_bytes()),
            "{\"f\":\"x\"}\n{\"f\":\"a\\u007f\"}\n{\"f\":\"\\u009b2J\"}\n{\"f\":\"ü\"}\n\
             {\"f\":\"evil\\u202etxt\"}\n{\"f\":\"z\\u200b\"}\n{\"f\":\"y\"}"
        );
        // Each line comes out as `json` makes it, whatever precedes it in the run.
        for line in run.lines() {
            let joined = format!("{{}}\n{line}\n{{}}");
            let want = format!(
                "{{}}\n{}\n{{}}",
                String::from_utf8_lossy(&json(line.as_bytes()))
            );
            assert_eq!(escaped(joined.as_bytes()), want);
        }
        // A line that is not UTF-8 is passed as it is, as `json` does.
        assert_eq!(escaped(b"{\"f\":\"\xff\"}\n"), "{\"f\":\"\u{fffd}\"}\n");
    }

    #[test]
    fn yaml_escapes_or_falls_back_to_flow_style() {
        let v = serde_json::json!({"fname": "a\u{1b}[2Jb\u{9b}c\u{7f}", "n": 1});
        let text = String::from_utf8(yaml(&v).unwrap()).unwrap();
        assert_eq!(text, "fname: \"a\\e[2Jb\\x9Bc\\x7F\"\n\"n\": 1\n");
        let v = serde_json::json!({"a": "x\u{202e}y", "n": [1]});
        let text = String::from_utf8(yaml(&v).unwrap()).unwrap();
        assert_eq!(text, "{\"a\":\"x\\u202ey\",\"n\":[1]}\n");
        let back: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
