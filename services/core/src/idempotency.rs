//! AIP-155 request ids: a create sent again with the same `request_id` returns what the first
//! made; sent again with other content, it is refused, as payment APIs refuse a reused
//! idempotency key. What a request asked for is kept as a fingerprint beside its id.

use sha2::{Digest as _, Sha256};

/// The fingerprint of a request's content: SHA-256 over each part, length-prefixed so that
/// ("ab", "c") and ("a", "bc") differ, in lowercase hex (64 characters). Holds nothing that
/// can be read back, so identity numbers and free text may be among the parts.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether a request carrying `fingerprint` repeats the one stored with `stored`: the same
/// content, or a request stored before fingerprints were kept (`None`).
pub fn is_repeat(stored: Option<&str>, fingerprint: &str) -> bool {
    stored.is_none_or(|stored| stored == fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_delimited_and_content_changes_the_fingerprint() {
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["a", "b"]), fingerprint(["a", "b"]));
        assert_ne!(fingerprint(["a", "b"]), fingerprint(["a", "B"]));
        assert_eq!(fingerprint(["x"]).len(), 64);
    }

    #[test]
    fn a_request_stored_without_a_fingerprint_counts_as_a_repeat() {
        let current = fingerprint(["a"]);
        assert!(is_repeat(None, &current));
        assert!(is_repeat(Some(&current), &current));
        assert!(!is_repeat(Some(&fingerprint(["b"])), &current));
    }
}
