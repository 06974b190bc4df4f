//! "Did you mean …?" for misspelt keys, variables and log levels: the
//! nearest candidate by edit distance, if it is near enough to be a typo.

/// The candidate closest to `word` (case-insensitively), if no more than a
/// third of its letters (at least two) differ, or if one starts the other
/// (`warning` for `warn`).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            let prefix = lower.len().min(word.len()) >= 3
                && (lower.starts_with(&word) || word.starts_with(&lower));
            let distance = edit_distance(&word, &lower);
            (
                if prefix {
                    distance.min(limit)
                } else {
                    distance
                },
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, in characters; two rows, O(len(a)·len(b)).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_none() {
        let levels = ["error", "warn", "info", "debug", "trace"];
        assert_eq!(nearest("warning", levels), Some("warn"));
        assert_eq!(nearest("INFO", levels), Some("info"));
        assert_eq!(nearest("verbose", levels), None);
        let vars = ["DAS_SOURCE_SCHEDULE", "DAS_SOURCE_AUDIO", "DAS_SIP_LISTEN"];
        assert_eq!(
            nearest("DAS_SOURCE_SCHEDUEL", vars),
            Some("DAS_SOURCE_SCHEDULE")
        );
        assert_eq!(nearest("DAS_SIP_LISTN", vars), Some("DAS_SIP_LISTEN"));
        assert_eq!(nearest("DAS_SOMETHING_ELSE_ENTIRELY", vars), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é€", "e€"), 1);
    }
}
