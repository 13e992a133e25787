//! Profilers' histograms as text, like bcc's:
//!
//! ```text
//!      usecs               : count    distribution
//!          0 -> 1          : 0        |                                        |
//!          2 -> 3          : 12       |****************************************|
//! ```

const BAR: usize = 40;

/// Renders one histogram event (`{"histogram":..,"unit":..,"buckets":[..]}`).
pub fn render(v: &serde_json::Value) -> String {
    let unit = crate::escape::terminal(v["unit"].as_str().unwrap_or("value"));
    let name = crate::escape::terminal(v["histogram"].as_str().unwrap_or(""));
    let empty = Vec::new();
    let buckets = v["buckets"].as_array().unwrap_or(&empty);
    let max = buckets
        .iter()
        .filter_map(|b| b["count"].as_u64())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    if !name.is_empty() {
        s.push_str(&format!("{name}:\n"));
    }
    s.push_str(&format!("{:>20} {:<9}: count    distribution\n", unit, ""));
    for b in buckets {
        let (start, end, count) = (
            b["start"].as_u64().unwrap_or(0),
            b["end"].as_u64().unwrap_or(0),
            b["count"].as_u64().unwrap_or(0),
        );
        let stars = if max == 0 {
            0
        } else {
            (count as u128 * BAR as u128).div_ceil(max as u128) as usize
        };
        s.push_str(&format!(
            "{start:>20} -> {end:<9}: {count:<8} |{}{}|\n",
            "*".repeat(stars),
            " ".repeat(BAR - stars)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_bars_scaled_to_the_largest_bucket() {
        let v = serde_json::json!({"histogram":"lat","unit":"usecs","buckets":[
            {"start":0,"end":1,"count":0},{"start":2,"end":3,"count":4},{"start":4,"end":7,"count":2}]});
        let text = super::render(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "lat:");
        assert!(
            lines[2].ends_with(": 0        |                                        |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3]
                .contains("2 -> 3        : 4        |****************************************|"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].contains(&format!("|{}{}|", "*".repeat(20), " ".repeat(20))),
            "{}",
            lines[4]
        );
    }
}
