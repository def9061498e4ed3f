//! Unguessable, prefixed identifiers (`prj_…`, `doc_…`): 128 random bits in
//! base32, so ids reveal nothing about order or about other orgs.

use std::fmt;

/// The kinds of resource ids and their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `prj_`
    Project,
    /// `doc_`
    Document,
    /// `exp_`
    Export,
    /// `int_`
    Integration,
    /// `key_` (a signing key's `kid`)
    SigningKey,
    /// `jti_` (a token's id)
    TokenId,
    /// `user_`
    User,
    /// `org_`
    Organization,
    /// `orgmem_`
    Membership,
    /// `idn_` (an email address)
    EmailAddress,
    /// `sess_`
    Session,
    /// `client_` (a device)
    Client,
    /// `sia_` (a sign-in attempt)
    SignIn,
    /// `jtmp_`
    JwtTemplate,
}

impl IdKind {
    /// The prefix, including the underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Project => "prj_",
            IdKind::Document => "doc_",
            IdKind::Export => "exp_",
            IdKind::Integration => "int_",
            IdKind::SigningKey => "key_",
            IdKind::TokenId => "jti_",
            IdKind::User => "user_",
            IdKind::Organization => "org_",
            IdKind::Membership => "orgmem_",
            IdKind::EmailAddress => "idn_",
            IdKind::Session => "sess_",
            IdKind::Client => "client_",
            IdKind::SignIn => "sia_",
            IdKind::JwtTemplate => "jtmp_",
        }
    }
}

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl IdKind {
    /// What [`is_id`] accepts, as a JSON Schema pattern (the OpenAPI
    /// document's): the prefix and 26 characters of the alphabet.
    pub fn pattern(self) -> String {
        let alphabet: String = ALPHABET.iter().map(|&b| char::from(b)).collect();
        format!("^{}[{alphabet}]{{26}}$", self.prefix())
    }
}

/// 16 random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // An OS RNG failure leaves no safe way to mint ids; stopping the process
    // beats issuing predictable ones.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// A fresh id of `kind`: prefix + 26 base32 characters (130 bits of space,
/// 128 of them random).
pub fn new_id(kind: IdKind) -> String {
    let bytes = random_bytes::<16>();
    let mut value = u128::from_be_bytes(bytes);
    let mut out = String::with_capacity(30);
    out.push_str(kind.prefix());
    let mut chars = [0u8; 26];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.push_str(std::str::from_utf8(&chars).unwrap_or_default());
    out
}

/// Whether `s` has the shape of an id of `kind`. Handlers use this to answer
/// "not found" for malformed ids without a database round trip.
pub fn is_id(kind: IdKind, s: &str) -> bool {
    s.strip_prefix(kind.prefix())
        .map(|rest| rest.len() == 26 && rest.bytes().all(|b| ALPHABET.contains(&b)))
        .unwrap_or(false)
}

/// A cursor for keyset pagination: the last id of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_length_and_are_distinct() {
        let a = new_id(IdKind::Project);
        let b = new_id(IdKind::Project);
        assert!(is_id(IdKind::Project, &a), "{a}");
        assert!(!is_id(IdKind::Document, &a));
        assert_ne!(a, b);
        assert_eq!(a.len(), 30);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "prj_",
            "prj_short",
            "doc_0123456789abcdefghjkmnpqrs",
            "prj_0123456789abcdefghjkmnpqri",
        ] {
            assert!(!is_id(IdKind::Project, bad), "{bad}");
        }
    }
}
