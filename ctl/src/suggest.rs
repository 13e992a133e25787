//! "Did you mean": the closest known name to a misspelled one.

/// The candidate closest to `word` (Damerau-Levenshtein distance: a
/// transposition counts once), when close enough to be a typo: at most one
/// edit for short words, up to three for long ones.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_not_strangers() {
        let names = ["trace_open", "trace_exec", "top_file", "snapshot_process"];
        assert_eq!(closest("trace_opne", names), Some("trace_open"));
        assert_eq!(closest("trace_exe", names), Some("trace_exec"));
        assert_eq!(closest("top_fil", names), Some("top_file"));
        assert_eq!(closest("snapshot_proces", names), Some("snapshot_process"));
        assert_eq!(closest("tcpdump", names), None);
        assert_eq!(closest("trace_open", names), None);
    }
}
