//! The characters a terminal acts on instead of showing them: one
//! definition for the agent, which escapes them as `\uHHHH` in every JSON
//! string it writes (at the source, byte by byte on UTF-8), and for
//! gadgetctl, which escapes them in what it prints (character by
//! character; kept for agents older than the agent's escaping).
//!
//! Untrusted text (file names, process names, DNS names, container
//! names) must not move the cursor, clear the screen, retitle the window
//! or reorder a line: C0 controls (`ESC[2J`), DEL, C1 controls (U+009B is
//! CSI in one character), bidirectional embeddings, overrides and
//! isolates, and the invisible formatting characters that hide them.
//!
//! [`is_unsafe`] (a `char`) and [`unsafe_in_utf8`] (the bytes of one
//! character) say the same for every Unicode scalar value (tested for all
//! of them); the byte form is the one on the agent's per-event path, a
//! match on the lead bytes that costs a safe non-ASCII character three
//! comparisons.

use std::ops::RangeInclusive;

/// The non-ASCII characters a terminal acts on, besides C0 and DEL:
/// C1 controls (U+0080..U+009F), zero-width spaces and marks, LRM and RLM
/// (U+200B..U+200F), the line and paragraph separators, bidirectional
/// embeddings and overrides (U+2028..U+202E), the word joiner, invisible
/// operators and bidirectional isolates (U+2060..U+2069), and the
/// zero-width no-break space (U+FEFF, a byte order mark).
pub const UNSAFE_NON_ASCII: [RangeInclusive<char>; 5] = [
    '\u{80}'..='\u{9f}',
    '\u{200b}'..='\u{200f}',
    '\u{2028}'..='\u{202e}',
    '\u{2060}'..='\u{2069}',
    '\u{feff}'..='\u{feff}',
];

/// The lead bytes of the UTF-8 forms of [`UNSAFE_NON_ASCII`]: a text
/// with none of them (and no C0 or DEL byte) has nothing to escape.
pub const UNSAFE_UTF8_LEADS: [u8; 3] = [0xc2, 0xe2, 0xef];

/// Whether `c` can change what a terminal shows beyond printing itself:
/// a C0 control, DEL, or one of [`UNSAFE_NON_ASCII`].
pub fn is_unsafe(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control(); // C0 and DEL
    }
    UNSAFE_NON_ASCII.iter().any(|r| r.contains(&c))
}

/// [`is_unsafe`] for `c`, the 2 to 4 bytes of one valid UTF-8 character
/// (what decoding found; anything else answers `None`): the character's
/// code point when it is one of [`UNSAFE_NON_ASCII`] (all of them are
/// below U+10000, so it fits a `u16`: the `HHHH` of its `\uHHHH` escape).
/// ASCII (C0, DEL) is the caller's to check: one byte is never unsafe here.
#[inline(always)]
pub fn unsafe_in_utf8(c: &[u8]) -> Option<u16> {
    match *c {
        // U+0080..U+009F: C2 80..C2 9F.
        [0xc2, b] if b < 0xa0 => Some(u16::from(b)),
        // U+200B..U+200F: E2 80 8B..8F; U+2028..U+202E: E2 80 A8..AE.
        [0xe2, 0x80, b @ (0x8b..=0x8f | 0xa8..=0xae)] => Some(0x2000 | u16::from(b & 0x3f)),
        // U+2060..U+2069: E2 81 A0..A9.
        [0xe2, 0x81, b @ 0xa0..=0xa9] => Some(0x2040 | u16::from(b & 0x3f)),
        // U+FEFF: EF BB BF.
        [0xef, 0xbb, 0xbf] => Some(0xfeff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_and_char_checks_agree_for_every_scalar_value() {
        let mut buf = [0u8; 4];
        let mut unsafe_count = 0;
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            let by_bytes = match bytes {
                [b] => b.is_ascii_control(),
                _ => match unsafe_in_utf8(bytes) {
                    Some(code) => {
                        assert_eq!(u32::from(code), u32::from(c), "{c:?}");
                        true
                    }
                    None => false,
                },
            };
            assert_eq!(by_bytes, is_unsafe(c), "U+{:04X}", u32::from(c));
            if by_bytes && !c.is_ascii() {
                assert!(UNSAFE_UTF8_LEADS.contains(&bytes[0]), "{c:?}");
            }
            unsafe_count += usize::from(by_bytes);
        }
        // 32 C0, DEL, 32 C1, 5 + 7 + 10 + 1 formatting characters.
        assert_eq!(unsafe_count, 32 + 1 + 32 + 5 + 7 + 10 + 1);
    }

    #[test]
    fn bytes_that_are_not_one_character_are_not_matched() {
        // One byte, a truncated sequence, and two characters together.
        for bytes in [&b"\x1b"[..], b"\xc2", b"\xe2\x80", b"\xc2\x9b\xc2\x9b", b""] {
            assert_eq!(unsafe_in_utf8(bytes), None, "{bytes:x?}");
        }
    }

    #[test]
    fn printable_text_of_any_script_is_safe() {
        assert!(
            "/etc/passwd 日本語 ü ☃ é \u{a0}"
                .chars()
                .all(|c| !is_unsafe(c))
        );
        assert!(
            "\x1b\x7f\u{9b}\u{202e}\u{2066}\u{feff}\u{200b}"
                .chars()
                .all(is_unsafe)
        );
    }
}
