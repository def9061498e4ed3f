//! A curl command that sends a transcript's request again. It is built from
//! the redacted transcript, so it can never carry a real credential: every
//! redacted value becomes `$TENANTRY_TOKEN`, a shell variable the person
//! reproducing the finding sets to a token of their own.

/// The shell variable redacted credentials become.
pub const TOKEN_VAR: &str = "$TENANTRY_TOKEN";

/// The curl command for the request of `transcript` (the client's format:
/// `METHOD URL`, headers, blank line and body, then `--> STATUS`), or `None`
/// when it is not one.
pub fn from_transcript(transcript: &str) -> Option<String> {
    let request = transcript.split("\n--> ").next()?;
    let mut lines = request.lines();
    let (method, url) = lines.next()?.split_once(' ')?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut headers = Vec::new();
    let mut body: Option<String> = None;
    for line in lines.by_ref() {
        if line.is_empty() {
            body = Some(String::new());
            break;
        }
        if let Some((name, value)) = line.split_once(": ") {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    if let Some(body) = &mut body {
        *body = lines.collect::<Vec<_>>().join("\n");
    }
    let body = body.filter(|b| !b.is_empty());
    let mut parts = vec!["curl -sS -i".to_string()];
    if method != "GET" || body.is_some() {
        parts.push(format!("-X {method}"));
    }
    parts.push(quote(url.trim()));
    let has_content_type = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    for (name, value) in &headers {
        let value = if name.eq_ignore_ascii_case("authorization") && value == "[redacted]" {
            "Bearer [redacted]".to_string()
        } else {
            value.clone()
        };
        parts.push(format!("-H {}", quote(&format!("{name}: {value}"))));
    }
    if let Some(body) = body {
        if !has_content_type {
            // The client sets these itself, after the transcript's headers.
            let kind = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            parts.push(format!("-H {}", quote(&format!("content-type: {kind}"))));
        }
        parts.push(format!("--data-raw {}", quote(&body)));
    }
    Some(parts.join(" \\\n  "))
}

/// `s` single-quoted for a POSIX shell, every `[redacted]` spliced in as
/// `"$TENANTRY_TOKEN"` (expanded by the shell).
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split("[redacted]").enumerate() {
        if i > 0 {
            out.push_str(&format!("\"{TOKEN_VAR}\""));
        }
        if !part.is_empty() {
            out.push_str(&format!("'{}'", part.replace('\'', r"'\''")));
        }
    }
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_becomes_curl_with_the_token_variable() {
        let t = "POST http://127.0.0.1:8080/api/projects?org_id=org_b\nauthorization: [redacted]\ncookie: __session=[redacted]\n\n{\"name\":\"it's\"}\n--> 403\ncontent-type: application/json\n\n{}";
        let curl = from_transcript(t).unwrap();
        assert_eq!(
            curl,
            "curl -sS -i \\\n  -X POST \\\n  'http://127.0.0.1:8080/api/projects?org_id=org_b' \\\n  -H 'authorization: Bearer '\"$TENANTRY_TOKEN\" \\\n  -H 'cookie: __session='\"$TENANTRY_TOKEN\" \\\n  -H 'content-type: application/json' \\\n  --data-raw '{\"name\":\"it'\\''s\"}'"
        );
    }

    #[test]
    fn a_get_has_no_method_flag() {
        let curl = from_transcript("GET http://h/x\n--> 200\n\nok").unwrap();
        assert_eq!(curl, "curl -sS -i \\\n  'http://h/x'");
        assert_eq!(from_transcript("hello"), None);
    }
}
