//! Labelling decoded output with its data source: `"datasource":"NAME"` as
//! the first key of every event object and of every row of a table line
//! (docs/dbus.md). Used only for gadgets with more than one data source;
//! copies, never allocates (the caller reuses both buffers).

/// `"datasource":"NAME"`, the bytes [`tag_lines`] inserts.
pub fn key(name: &str) -> Vec<u8> {
    let mut k = br#""datasource":"#.to_vec();
    super::decode::write_json_str(&mut k, name.as_bytes());
    k
}

/// Copies the JSON lines of `src` to `out`, inserting `tag` (from [`key`])
/// as the first key of each top-level object and of each object element of
/// a top-level array. Strings are skipped, so braces inside them are data.
/// An empty table (`[]`) is dropped: it has no row to name its source.
pub fn tag_lines(src: &[u8], tag: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len() + tag.len() * 4);
    let mut rest = src;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let (line, next) = rest.split_at(end);
        rest = next;
        if line.strip_suffix(b"\n").unwrap_or(line) != b"[]" {
            tag_line(line, tag, out);
        }
    }
}

/// [`tag_lines`] for one line (with its newline, if any).
fn tag_line(line: &[u8], tag: &[u8], out: &mut Vec<u8>) {
    let array_line = line.first() == Some(&b'[');
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut copied = 0;
    for (i, &b) in line.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                // The line's object (depth 1), or a row of the line's array (depth 2).
                if b == b'{' && (depth == 1 || (depth == 2 && array_line)) {
                    out.extend_from_slice(&line[copied..=i]);
                    out.extend_from_slice(tag);
                    if line.get(i + 1) != Some(&b'}') {
                        out.push(b',');
                    }
                    copied = i + 1;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out.extend_from_slice(&line[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(src: &str) -> String {
        let mut out = Vec::new();
        tag_lines(src.as_bytes(), &key("open"), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn objects_and_rows_get_the_key_first_and_empty_tables_are_dropped() {
        assert_eq!(
            tagged("{\"pid\":1,\"n\":{\"a\":2}}\n{}\n"),
            "{\"datasource\":\"open\",\"pid\":1,\"n\":{\"a\":2}}\n{\"datasource\":\"open\"}\n"
        );
        assert_eq!(
            tagged("[{\"a\":[{\"x\":1}]},{}]\n[]\n[{}]"),
            "[{\"datasource\":\"open\",\"a\":[{\"x\":1}]},{\"datasource\":\"open\"}]\n[{\"datasource\":\"open\"}]"
        );
    }

    #[test]
    fn braces_and_quotes_inside_strings_are_data() {
        assert_eq!(
            tagged("{\"f\":\"}{\\\"[{\",\"g\":1}\n"),
            "{\"datasource\":\"open\",\"f\":\"}{\\\"[{\",\"g\":1}\n"
        );
    }

    #[test]
    fn the_name_is_escaped() {
        assert_eq!(key("a\"b"), b"\"datasource\":\"a\\\"b\"".to_vec());
    }
}
