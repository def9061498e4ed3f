//! The last line of defence before a report is written: transcripts are
//! redacted by the client (Authorization, cookies, registered secrets), but
//! a target can echo a token in a body or an error message. Anything shaped
//! like a JWT, a Clerk secret key or a bearer credential is masked here.

/// What a masked credential reads as.
pub const MASK: &str = "[redacted]";

/// `text` with every JWT (`eyJ….….…`), Clerk secret key (`sk_test_…`,
/// `sk_live_…`) and `Bearer <credential>` value replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_bearer = false;
    while !rest.is_empty() {
        let start = rest.find(is_token_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        if start > 0 {
            // Only the word right after "Bearer " is its credential.
            after_bearer = after_bearer && rest[..start] == *" ";
        }
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.is_empty() {
            break;
        }
        if after_bearer && word.len() >= 8 {
            out.push_str(MASK);
        } else if let Some(at) = secret_start(word) {
            out.push_str(&word[..at]);
            out.push_str(MASK);
        } else {
            out.push_str(word);
        }
        after_bearer = word.eq_ignore_ascii_case("bearer");
        rest = &rest[end..];
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~' | '+' | '/')
}

/// Where a credential starts in `word`: a JWT (`eyJ` with a `.` after it)
/// or a Clerk secret key with at least 8 characters of key.
fn secret_start(word: &str) -> Option<usize> {
    if let Some(at) = word.find("eyJ") {
        let rest = &word[at..];
        if rest.len() >= 20 && rest.contains('.') {
            return Some(at);
        }
    }
    ["sk_test_", "sk_live_"].iter().find_map(|p| {
        let at = word.find(p)?;
        (word.len() >= at + p.len() + 8).then_some(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_keys_are_masked() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEyMyJ9.c2lnbmF0dXJl";
        assert_eq!(redact(&format!("token {jwt}.")), "token [redacted]");
        assert_eq!(redact("key=sk_test_abcdefgh1234"), "key=[redacted]");
        assert_eq!(
            redact("Authorization: Bearer abcdefgh12345"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("Authorization: Bearer [redacted]"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("GET /api/projects/prj_0123 -> 404"),
            "GET /api/projects/prj_0123 -> 404"
        );
    }
}
