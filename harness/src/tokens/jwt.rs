//! A JWS compact token taken apart into what the attacks rewrite: the
//! header and claims as JSON objects, and the signature bytes.

use base64::Engine;
use serde_json::{Map, Value};

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url with or without padding.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// Why a token cannot be taken apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not `header.payload.signature`.
    #[error("a JWS compact token has three dot-separated parts")]
    Parts,
    /// A part is not base64url.
    #[error("the {0} is not base64url")]
    Encoding(&'static str),
    /// The header or payload is not a JSON object.
    #[error("the {0} is not a JSON object")]
    NotAnObject(&'static str),
}

/// A decoded JWS compact token.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// The original encoded parts, so an untouched part is sent byte for byte.
    raw: [String; 3],
}

fn object(part: &str, name: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = unb64(part).ok_or(JwtError::Encoding(name))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::NotAnObject(name)),
    }
}

impl Jwt {
    /// Takes `token` apart.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts[..] else {
            return Err(JwtError::Parts);
        };
        Ok(Self {
            header: object(h, "header")?,
            claims: object(p, "payload")?,
            signature: unb64(s).ok_or(JwtError::Encoding("signature"))?,
            raw: [h.to_string(), p.to_string(), s.to_string()],
        })
    }

    /// The header's `kid`, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `alg`, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The encoded header: the original bytes if `header` is unchanged.
    pub fn encoded_header(&self, header: &Map<String, Value>) -> String {
        if header == &self.header {
            self.raw[0].clone()
        } else {
            encode_object(header)
        }
    }

    /// The encoded payload: the original bytes if `claims` is unchanged.
    pub fn encoded_claims(&self, claims: &Map<String, Value>) -> String {
        if claims == &self.claims {
            self.raw[1].clone()
        } else {
            encode_object(claims)
        }
    }

    /// `header.payload` — what a signature covers.
    pub fn signing_input(&self, header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
        format!("{}.{}", self.encoded_header(header), self.encoded_claims(claims))
    }

    /// The token as received, its signature's base64url text cut short by
    /// `chars` characters (jwt_tool's "broken signature").
    pub fn with_signature_text_cut(&self, chars: usize) -> String {
        let sig = &self.raw[2];
        let keep = sig.len().saturating_sub(chars);
        format!("{}.{}.{}", self.raw[0], self.raw[1], &sig[..keep])
    }

    /// `header.payload.signature` with the original signature kept: the
    /// claims or header are altered but not re-signed.
    pub fn with_original_signature(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> String {
        format!("{}.{}", self.signing_input(header, claims), self.raw[2])
    }
}

/// A JSON object as compact base64url JSON.
pub fn encode_object(map: &Map<String, Value>) -> String {
    b64(Value::Object(map.clone()).to_string().as_bytes())
}

/// `input.signature` with the signature base64url-encoded.
pub fn assemble(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", b64(signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untouched_parts_round_trip_byte_for_byte() {
        // Key order and spacing that a re-serialisation would change.
        let h = b64(br#"{"typ":"JWT", "alg":"RS256","kid":"k1"}"#);
        let p = b64(br#"{"sub":"user_1","exp":2}"#);
        let token = format!("{h}.{p}.{}", b64(b"sig"));
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(jwt.kid(), Some("k1"));
        assert_eq!(jwt.alg(), Some("RS256"));
        assert_eq!(jwt.signature, b"sig");
        assert_eq!(jwt.with_original_signature(&jwt.header, &jwt.claims), token);
        let mut claims = jwt.claims.clone();
        claims.insert("exp".into(), json!(1));
        let altered = jwt.with_original_signature(&jwt.header, &claims);
        assert!(altered.starts_with(&format!("{h}.")));
        assert!(altered.ends_with(&format!(".{}", b64(b"sig"))));
        assert_ne!(altered, token);
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        assert_eq!(Jwt::parse("a.b"), Err(JwtError::Parts));
        assert_eq!(Jwt::parse("!.b.c"), Err(JwtError::Encoding("header")));
        let arr = b64(b"[1]");
        assert_eq!(
            Jwt::parse(&format!("{arr}.{arr}.")),
            Err(JwtError::NotAnObject("header"))
        );
    }
}
