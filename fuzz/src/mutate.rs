//! Structure-aware token mutations: edits to the header and payload JSON
//! (set, remove, duplicate a key), to their encoding, and to the signature —
//! kept, damaged, or replaced by a re-signature under the test key, another
//! key, HMAC with the public key, or none.

use arbitrary::Arbitrary;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde_json::{Map, Value};

use crate::token::{b64, setup, sign_hs256, sign_rs256, ISSUER, KID, NOW, PARTY};

/// Header and claim names worth hitting.
const NAMES: &[&str] = &[
    "alg", "kid", "typ", "jwk", "jku", "x5u", "x5c", "crit", "cty", "sub", "sid", "iss", "azp", "exp", "iat",
    "nbf", "jti", "v", "sts", "fva", "o", "fea", "org_id", "Alg", "KID",
];
/// Strings worth using as values.
const TEXTS: &[&str] = &[
    "RS256",
    "rs256",
    "none",
    "None",
    "HS256",
    "ES256",
    "PS256",
    "RS512",
    "",
    KID,
    "ins_other",
    ISSUER,
    "https://clerk.tenantry.fuzz/",
    PARTY,
    "http://evil.test",
    "active",
    "pending",
    "sess_fuzz",
    "user_fuzz",
    "user_other",
    "org_a",
    "org_b",
    "JWT",
    "../../dev/null",
];

/// A JSON value to plant.
#[derive(Debug, Arbitrary)]
pub enum Json {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// `NOW + offset` (time claims).
    Time(i32),
    /// Any integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A known string.
    Text(u8),
    /// Any string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object.
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn value(&self, depth: usize) -> Value {
        if depth > 8 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Time(off) => Value::from(NOW + i64::from(*off)),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Text(i) => Value::from(TEXTS[usize::from(*i) % TEXTS.len()]),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Arr(items) => Value::Array(items.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, j)| (k.clone(), j.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// A key name.
#[derive(Debug, Arbitrary)]
pub enum Name {
    /// A known name.
    Known(u8),
    /// Any.
    Other(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Name::Other(s) => s.clone(),
        }
    }
}

/// An edit to a JSON part.
#[derive(Debug, Arbitrary)]
pub enum Edit {
    /// Set a key.
    Set(Name, Json),
    /// Remove a key.
    Remove(Name),
    /// Append a second occurrence of a key (textually).
    Duplicate(Name, Json),
}

/// How a part is encoded.
#[derive(Debug, Arbitrary)]
pub enum Encoding {
    /// base64url, no padding (canonical).
    Canonical,
    /// With padding.
    Padded,
    /// Standard alphabet.
    Standard,
    /// A space or newline inside.
    Whitespace(u16, bool),
}

/// What signs the token.
#[derive(Debug, Arbitrary)]
pub enum Signer {
    /// The original signature.
    Keep,
    /// The original signature with one bit flipped.
    FlipBit(u16),
    /// The original signature truncated.
    Truncate(u16),
    /// No signature.
    Empty,
    /// A fresh RS256 signature by the test key.
    Resign,
    /// RS256 by another key (same `kid`).
    OtherKey,
    /// HS256 keyed with the test key's public PEM.
    HmacPublicKey,
}

/// A mutation of the valid token.
#[derive(Debug, Arbitrary)]
pub struct Mutation {
    /// Header edits.
    pub header: Vec<Edit>,
    /// Payload edits.
    pub payload: Vec<Edit>,
    /// Header encoding.
    pub header_encoding: Encoding,
    /// Payload encoding.
    pub payload_encoding: Encoding,
    /// The signature.
    pub signer: Signer,
}

fn part(original: &str, edits: &[Edit], encoding: &Encoding) -> String {
    let text = if edits.is_empty() {
        // Unedited parts keep their exact bytes, so `Keep` still verifies.
        crate::token::decode_part(original)
    } else {
        let mut map: Map<String, Value> =
            serde_json::from_slice(&crate::token::decode_part(original)).unwrap();
        let mut extra = String::new();
        for edit in edits {
            match edit {
                Edit::Set(n, j) => {
                    map.insert(n.text(), j.value(0));
                }
                Edit::Remove(n) => {
                    map.remove(&n.text());
                }
                Edit::Duplicate(n, j) => {
                    extra.push_str(&format!(",{}:{}", Value::from(n.text()), j.value(0)));
                }
            }
        }
        let mut text = Value::Object(map).to_string();
        if !extra.is_empty() {
            text.pop();
            if text == "{" {
                extra.remove(0);
            }
            text.push_str(&extra);
            text.push('}');
        }
        text.into_bytes()
    };
    match encoding {
        Encoding::Canonical => b64(&text),
        Encoding::Padded => URL_SAFE.encode(&text),
        Encoding::Standard => STANDARD.encode(&text),
        Encoding::Whitespace(at, newline) => {
            let mut s = b64(&text);
            let at = usize::from(*at) % (s.len() + 1);
            s.insert(at, if *newline { '\n' } else { ' ' });
            s
        }
    }
}

impl Mutation {
    /// Whether the payload repeats a key (textually).
    pub fn duplicates_claims(&self) -> bool {
        self.payload.iter().any(|e| matches!(e, Edit::Duplicate(..)))
    }

    /// The mutated token, and whether it was re-signed by the test key.
    pub fn apply(&self) -> (String, bool) {
        let setup = setup();
        let mut original = setup.valid.split('.');
        let (h, p, s) = (
            original.next().unwrap(),
            original.next().unwrap(),
            original.next().unwrap(),
        );
        let message = format!(
            "{}.{}",
            part(h, &self.header, &self.header_encoding),
            part(p, &self.payload, &self.payload_encoding)
        );
        let token = match self.signer {
            Signer::Keep => format!("{message}.{s}"),
            Signer::FlipBit(bit) => {
                let mut sig = crate::token::decode_part(s);
                let bit = usize::from(bit) % (sig.len() * 8);
                sig[bit / 8] ^= 1 << (bit % 8);
                format!("{message}.{}", b64(&sig))
            }
            Signer::Truncate(n) => format!("{message}.{}", &s[..usize::from(n) % s.len()]),
            Signer::Empty => format!("{message}."),
            Signer::Resign => sign_rs256(&message, setup.key.encoding_key()),
            Signer::OtherKey => sign_rs256(&message, setup.other.encoding_key()),
            Signer::HmacPublicKey => sign_hs256(&message, &setup.hs_confusion),
        };
        (token, matches!(self.signer, Signer::Resign))
    }
}
