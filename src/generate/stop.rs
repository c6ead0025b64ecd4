//! Stop strings: where one starts in the text, and how much text can be released while one may still be
//! completing.

/// Byte index where the earliest stop string starts in `text`.
pub(super) fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// How much of `text` can be released: all of it except a suffix that is a proper prefix of some stop string.
pub(super) fn safe_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops {
        // Longest suffix of `text` that is a prefix of `s` (shorter than `s`, else it would have matched).
        let max = (s.len() - 1).min(text.len());
        for len in (1..=max).rev() {
            let start = text.len() - len;
            if text.is_char_boundary(start) && s.starts_with(&text[start..]) {
                hold = hold.max(len);
                break;
            }
        }
    }
    text.len() - hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_holdback() {
        let stops = vec!["\nUser:".to_string(), "###".to_string()];
        assert_eq!(safe_prefix_len("hello", &stops), 5);
        assert_eq!(safe_prefix_len("hello\nUs", &stops), 5);
        assert_eq!(safe_prefix_len("hello #", &stops), 6);
        assert_eq!(safe_prefix_len("héllo", &[]), "héllo".len());
        assert_eq!(first_stop("abc###def\nUser:", &stops), Some(3));
        assert_eq!(first_stop("abc", &stops), None);
    }
}
