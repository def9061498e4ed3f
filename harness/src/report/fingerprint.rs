//! Finding fingerprints, stable across runs and seeds: the same flaw found
//! again (other ids, other canaries, another port of the reference stack)
//! gets the same fingerprint, so a baseline can recognise it.
//!
//! The fingerprint hashes the finding's key (check id, or scenario id and
//! step label) and its endpoint with the host dropped and every id-like path
//! segment or query value replaced by a placeholder; findings without an
//! endpoint hash their message, normalised the same way.

/// `METHOD /path?query` from a transcript's first line (`METHOD URL`).
pub fn endpoint(transcript: &str) -> Option<String> {
    let first = transcript.lines().next()?;
    let (method, url) = first.split_once(' ')?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(format!("{method} {}", path_of(url.trim())))
}

/// The path and query of `url` (the URL itself when it has no scheme).
pub fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

/// `endpoint` with ids and random tokens replaced by placeholders:
/// `GET /api/projects/prj_0a1b2c3d4e5f6a7b?org_id=org_2x9…` becomes
/// `GET /api/projects/prj_{id}?org_id=org_{id}`.
pub fn normalise_endpoint(endpoint: &str) -> String {
    let (method, target) = endpoint.split_once(' ').unwrap_or(("", endpoint));
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path: Vec<String> = path.split('/').map(normalise_segment).collect();
    let mut out = format!("{method} {}", path.join("/"));
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => format!("{k}={}", normalise_segment(v)),
                None => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out.trim().to_string()
}

/// A message with ids, random tokens and numbers replaced by placeholders.
pub fn normalise_message(message: &str) -> String {
    message
        .split_whitespace()
        .map(|word| {
            let trimmed = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            let normal = normalise_segment(trimmed);
            let normal = if normal == trimmed {
                collapse_digits(trimmed)
            } else {
                normal
            };
            word.replace(trimmed, &normal)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fingerprint: 32 hex digits of SHA-256 over the key and the
/// normalised endpoint (or, without one, the normalised message).
pub fn fingerprint(key: &str, endpoint: Option<&str>, message: &str) -> String {
    let subject = match endpoint {
        Some(e) => normalise_endpoint(e),
        None => normalise_message(message),
    };
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("tenantry-fingerprint/1\n{key}\n{subject}").as_bytes(),
    );
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// One path segment (or query value, or word) with ids normalised. Pieces
/// separated by `-`, `.` or `,` are judged one by one, so a slug such as
/// `acme-7f3k2m9x` keeps its readable part.
fn normalise_segment(segment: &str) -> String {
    if let Some(kind) = id_kind(segment) {
        return kind.to_string();
    }
    if let Some((prefix, rest)) = segment.split_once('_') {
        if is_prefix(prefix) && looks_random(rest) {
            return format!("{prefix}_{{id}}");
        }
    }
    let mut out = String::new();
    let mut piece = String::new();
    for c in segment.chars() {
        if matches!(c, '-' | '.' | ',') {
            out.push_str(&normalise_piece(&piece));
            out.push(c);
            piece.clear();
        } else {
            piece.push(c);
        }
    }
    out.push_str(&normalise_piece(&piece));
    out
}

fn normalise_piece(piece: &str) -> String {
    if let Some(kind) = id_kind(piece) {
        return kind.to_string();
    }
    if let Some((prefix, rest)) = piece.split_once('_') {
        if is_prefix(prefix) && looks_random(rest) {
            return format!("{prefix}_{{id}}");
        }
    }
    if piece.len() >= 6 && looks_random(piece) {
        return "{token}".into();
    }
    piece.to_string()
}

/// The placeholder for a whole-value id: number, UUID, ULID, hex, canary.
fn id_kind(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{n}");
    }
    let uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if uuid {
        return Some("{uuid}");
    }
    // ULID: 26 Crockford base32 characters, time first (starts 0-7).
    let ulid = b.len() == 26
        && matches!(b[0], b'0'..=b'7')
        && b.iter()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_alphabetic() && !b"ILOUilou".contains(c)));
    if ulid && b.iter().any(u8::is_ascii_digit) {
        return Some("{ulid}");
    }
    if b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit) {
        return Some("{hex}");
    }
    if s.starts_with("tnry") && b.len() >= 20 && b.iter().all(u8::is_ascii_alphanumeric) {
        return Some("{canary}");
    }
    None
}

/// A type prefix of an id (`org`, `user`, `prj`, `sess`): short lowercase.
fn is_prefix(p: &str) -> bool {
    (1..=12).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_lowercase())
}

/// Random-looking: alphanumeric, at least 8 characters, and a digit or mixed
/// case (or long enough that a word is unlikely).
fn looks_random(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && (b.iter().any(u8::is_ascii_digit)
            || (b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase))
            || b.len() >= 16)
}

fn collapse_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_drop_the_host() {
        let t = "GET http://127.0.0.1:41234/api/projects/prj_1?x=1\nauthorization: [redacted]\n--> 200\n";
        assert_eq!(endpoint(t).as_deref(), Some("GET /api/projects/prj_1?x=1"));
        assert_eq!(endpoint("not a transcript").as_deref(), None);
    }

    #[test]
    fn ids_and_tokens_are_normalised() {
        let cases = [
            (
                "GET /api/projects/prj_0123456789abcdef",
                "GET /api/projects/prj_{id}",
            ),
            ("GET /api/orgs/org_2bQxZ9kLmN4pR/x", "GET /api/orgs/org_{id}/x"),
            ("DELETE /api/items/42", "DELETE /api/items/{n}"),
            ("GET /a/3f2b8c1e-9d4a-4b6f-8e2a-1c3d5e7f9a0b", "GET /a/{uuid}"),
            ("GET /a/01HZX3K4M5N6P7Q8R9S0T1V2W3", "GET /a/{ulid}"),
            ("GET /a/deadbeef00112233", "GET /a/{hex}"),
            ("GET /s?q=tnry0a1b2c3d4e5f6g7h8j9k0m1n", "GET /s?q={canary}"),
            (
                "GET /orgs/acme-7f3k2m9x/settings",
                "GET /orgs/acme-{token}/settings",
            ),
            ("GET /api/access_requests", "GET /api/access_requests"),
        ];
        for (raw, normal) in cases {
            assert_eq!(normalise_endpoint(raw), normal, "{raw}");
        }
    }

    #[test]
    fn fingerprints_ignore_ids_but_not_checks_or_paths() {
        let a = fingerprint("ISO-001", Some("GET /api/projects/prj_0123456789abcdef"), "x");
        let b = fingerprint("ISO-001", Some("GET /api/projects/prj_fedcba9876543210"), "y");
        let c = fingerprint("ISO-002", Some("GET /api/projects/prj_0123456789abcdef"), "x");
        let d = fingerprint("ISO-001", Some("GET /api/documents/prj_0123456789abcdef"), "x");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.len(), 32);
        let m1 = fingerprint("RLS-002", None, "app.projects leaks 12 rows of org_2bQxZ9kLmN4pR");
        let m2 = fingerprint("RLS-002", None, "app.projects leaks 7 rows of org_9ZzQxkLmN4pRb");
        assert_eq!(m1, m2);
    }
}
