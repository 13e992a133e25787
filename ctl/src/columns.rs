//! Column widths that fit the terminal: the width comes from the terminal
//! on stdout, or from `COLUMNS` (which wins, as for `ls`); columns shrink
//! (widest first, down to their `minWidth`) until a line fits, and the last
//! column takes what is left instead of wrapping. Text is measured in
//! terminal cells (wide CJK characters count two) and cut where the
//! definition's `ellipsis` says. Without a terminal or `COLUMNS`, lines are
//! as wide as the fields make them and the last column is never cut.

use std::borrow::Cow;

use gadgetd_dbus::stream::{Ellipsis, Field};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Field name prefixes of the container enrichment the agent adds.
pub const ENRICHMENT_PREFIXES: &[&str] = &["runtime.", "k8s."];

/// The width lines must fit in, in cells: `COLUMNS`, else the terminal's.
pub fn line_limit() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer we pass.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// Shrinks `columns` until they fit `limit` cells with one space between
/// them, widest first, none below its floor (`minWidth`, else 3 cells).
pub fn fit_to(columns: &mut [Field], limit: usize) {
    let floor = |c: &Field| c.min_width.unwrap_or(3).min(c.width);
    loop {
        let total: usize = columns.iter().map(|c| c.width as usize).sum::<usize>()
            + columns.len().saturating_sub(1);
        if total <= limit {
            return;
        }
        let Some(widest) = columns
            .iter_mut()
            .filter(|c| c.width > floor(c))
            .max_by_key(|c| c.width)
        else {
            return; // as narrow as they go; the last column is cut at the edge
        };
        widest.width -= 1;
    }
}

/// Terminal cells `text` takes: printable ASCII takes one cell a byte
/// (counted without decoding).
pub fn cells(text: &str) -> usize {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.len();
    }
    text.width()
}

/// `text` cut to at most `width` cells, with `…` where `ellipsis` says.
/// Borrowed when `text` fits (the common case, no allocation).
pub fn fit(text: &str, width: usize, ellipsis: Ellipsis) -> Cow<'_, str> {
    if cells(text) <= width {
        return Cow::Borrowed(text);
    }
    if width == 0 {
        return Cow::Borrowed("");
    }
    let room = width - 1; // for the ellipsis
    Cow::Owned(match ellipsis {
        Ellipsis::None => take_head(text, width).to_string(),
        Ellipsis::End => format!("{}…", take_head(text, room)),
        Ellipsis::Start => format!("…{}", take_tail(text, room)),
        Ellipsis::Middle => {
            let head = take_head(text, room / 2);
            let tail = take_tail(text, room - cells(head));
            format!("{head}…{tail}")
        }
    })
}

/// The longest prefix of `text` that fits `width` cells.
fn take_head(text: &str, width: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.width().unwrap_or(0);
        if used > width {
            return &text[..i];
        }
    }
    text
}

/// The longest suffix of `text` that fits `width` cells.
fn take_tail(text: &str, width: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices().rev() {
        used += c.width().unwrap_or(0);
        if used > width {
            return &text[i + c.len_utf8()..];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadgetd_dbus::stream::Alignment;

    fn col(name: &str, width: u32, min: Option<u32>) -> Field {
        Field {
            name: name.into(),
            kind: "string".into(),
            width,
            min_width: min,
            max_width: None,
            alignment: Alignment::Left,
            visible: true,
            order: 0,
            ellipsis: Ellipsis::End,
            description: String::new(),
        }
    }

    #[test]
    fn columns_shrink_widest_first_down_to_their_floor() {
        let mut cols = vec![
            col("a", 7, None),
            col("b", 16, Some(10)),
            col("c", 40, None),
        ];
        fit_to(&mut cols, 80);
        assert_eq!(
            cols.iter().map(|c| c.width).collect::<Vec<_>>(),
            [7, 16, 40]
        );
        fit_to(&mut cols, 40);
        let widths: Vec<u32> = cols.iter().map(|c| c.width).collect();
        assert_eq!(widths.iter().sum::<u32>() + 2, 40, "{widths:?}");
        assert!(widths[1] >= 10 && widths[0] == 7, "{widths:?}");
        fit_to(&mut cols, 5);
        assert_eq!(cols.iter().map(|c| c.width).collect::<Vec<_>>(), [3, 10, 3]);
    }

    #[test]
    fn text_is_cut_in_cells_where_the_ellipsis_says() {
        assert_eq!(fit("/etc/passwd", 20, Ellipsis::End), "/etc/passwd");
        assert_eq!(fit("/etc/passwd", 6, Ellipsis::End), "/etc/…");
        assert_eq!(fit("/etc/passwd", 6, Ellipsis::Start), "…asswd");
        assert_eq!(fit("/etc/passwd", 6, Ellipsis::Middle), "/e…swd");
        assert_eq!(fit("/etc/passwd", 6, Ellipsis::None), "/etc/p");
        // Wide characters take two cells and are never split.
        assert_eq!(fit("日本語のファイル", 7, Ellipsis::End), "日本語…");
        assert_eq!(cells(&fit("日本語のファイル", 6, Ellipsis::Start)), 5);
        // Text that fits is not copied; wide text is measured, not counted in bytes.
        assert!(matches!(
            fit("/etc/passwd", 11, Ellipsis::End),
            Cow::Borrowed(_)
        ));
        assert!(matches!(fit("日本語", 6, Ellipsis::End), Cow::Borrowed(_)));
        assert_eq!(fit("日本語", 5, Ellipsis::End), "日本…");
        assert_eq!(fit("ab\tc", 4, Ellipsis::End), "ab\tc");
    }
}
