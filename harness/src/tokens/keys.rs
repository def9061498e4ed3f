//! Keys of the token attacks: the target's public key in every encoding a
//! confused verifier might use as an HMAC secret, the attacker's own RSA and
//! P-256 keys (with their JWKs and a self-signed certificate), and the
//! target's signing key when the harness holds it (the `mint` source, or an
//! operator who hands it over) so claim checks can be probed with valid
//! signatures.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, RsaEncoding, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA512, RSA_PSS_SHA256,
};
use base64::Engine;
use serde_json::{json, Value};

use super::jwt::{b64, unb64};

/// Why a key could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The crypto library refused.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The JWK is not an RSA key with `n` and `e`.
    #[error("the JWK is not an RSA public key with n and e")]
    NotRsaJwk,
    /// The text is not a PEM private key the harness reads.
    #[error("{0}")]
    Pem(String),
}

fn crypto(e: impl std::fmt::Display) -> KeyError {
    KeyError::Crypto(e.to_string())
}

/// DER length octets.
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of an unsigned big-endian number.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    der(0x02, &content)
}

/// PEM with 64-character lines and a trailing newline.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// An RSA public key in the encodings a key-confused verifier may use as its
/// HMAC secret (TOK-006).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicEncodings {
    /// PKCS#1 `RSAPublicKey` DER.
    pub pkcs1_der: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// The JWK as published (compact JSON).
    pub jwk_json: String,
}

impl PublicEncodings {
    /// The encodings of the RSA JWK `jwk`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let part = |name: &str| jwk.get(name).and_then(Value::as_str).and_then(unb64);
        let (Some(n), Some(e)) = (part("n"), part("e")) else {
            return Err(KeyError::NotRsaJwk);
        };
        if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
            return Err(KeyError::NotRsaJwk);
        }
        let mut rsa = der_uint(&n);
        rsa.extend(der_uint(&e));
        let pkcs1_der = der(0x30, &rsa);
        // AlgorithmIdentifier { rsaEncryption, NULL }.
        let algorithm: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ];
        let mut bits = vec![0u8];
        bits.extend(&pkcs1_der);
        let mut spki = algorithm.to_vec();
        spki.extend(der(0x03, &bits));
        Ok(Self {
            spki_der: der(0x30, &spki),
            pkcs1_der,
            jwk_json: jwk.to_string(),
        })
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), newline-terminated as most
    /// libraries write it.
    pub fn spki_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der)
    }

    /// PKCS#1 PEM (`-----BEGIN RSA PUBLIC KEY-----`).
    pub fn pkcs1_pem(&self) -> String {
        pem("RSA PUBLIC KEY", &self.pkcs1_der)
    }

    /// Every secret of TOK-006, labelled.
    pub fn hmac_secrets(&self) -> Vec<(&'static str, Vec<u8>)> {
        let spki = self.spki_pem();
        let pkcs1 = self.pkcs1_pem();
        vec![
            ("SPKI PEM with trailing newline", spki.clone().into_bytes()),
            (
                "SPKI PEM without trailing newline",
                spki.trim_end().as_bytes().to_vec(),
            ),
            (
                "SPKI PEM with CRLF line ends",
                spki.replace('\n', "\r\n").into_bytes(),
            ),
            ("PKCS#1 PEM with trailing newline", pkcs1.clone().into_bytes()),
            (
                "PKCS#1 PEM without trailing newline",
                pkcs1.trim_end().as_bytes().to_vec(),
            ),
            ("SPKI DER", self.spki_der.clone()),
            ("PKCS#1 DER", self.pkcs1_der.clone()),
            ("the JWK JSON", self.jwk_json.clone().into_bytes()),
        ]
    }
}

/// HMAC-SHA-256 (`HS256`).
pub fn hs256(key: &[u8], input: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
}

/// An RSA key pair that signs RS256, RS512 and PS256.
pub struct RsaKey {
    pair: KeyPair,
    /// Its key id.
    pub kid: String,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("RsaKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The RSA signature schemes the attacks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
}

impl RsaAlg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            RsaAlg::Rs256 => "RS256",
            RsaAlg::Rs512 => "RS512",
            RsaAlg::Ps256 => "PS256",
        }
    }

    fn encoding(self) -> &'static dyn RsaEncoding {
        match self {
            RsaAlg::Rs256 => &RSA_PKCS1_SHA256,
            RsaAlg::Rs512 => &RSA_PKCS1_SHA512,
            RsaAlg::Ps256 => &RSA_PSS_SHA256,
        }
    }
}

impl RsaKey {
    /// A fresh RSA-2048 key named `kid`.
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        Ok(Self {
            pair: KeyPair::generate(KeySize::Rsa2048).map_err(crypto)?,
            kid: kid.into(),
        })
    }

    /// The key stored as PKCS#8 DER, named `kid` (the target's own key when
    /// the harness holds it).
    pub fn from_pkcs8(kid: &str, der: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            pair: KeyPair::from_pkcs8(der).map_err(crypto)?,
            kid: kid.into(),
        })
    }

    /// An RSA private key in PEM: `PRIVATE KEY` (PKCS#8) or
    /// `RSA PRIVATE KEY` (PKCS#1), named `kid` until
    /// [`RsaKey::kid_in`] finds its name in the target's JWKS.
    pub fn from_pem(kid: &str, text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_block(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => {
                return Err(KeyError::Pem(format!(
                    "a PEM `{other}` block; expected an RSA private key (`PRIVATE KEY` or `RSA PRIVATE KEY`)"
                )))
            }
        }
        .map_err(|e| {
            KeyError::Pem(format!(
                "the `{label}` block is not an RSA private key the harness can use ({e})"
            ))
        })?;
        Ok(Self {
            pair,
            kid: kid.into(),
        })
    }

    /// The `kid` of the entry of `jwks` (`{"keys": [...]}`) whose public
    /// key is this key's, if the target publishes it.
    pub fn kid_in(&self, jwks: &Value) -> Option<String> {
        let public = self.jwk();
        jwks.get("keys")?.as_array()?.iter().find_map(|entry| {
            let same = entry.get("kty").and_then(Value::as_str) == Some("RSA")
                && entry.get("n") == public.get("n")
                && entry.get("e") == public.get("e");
            same.then(|| {
                entry
                    .get("kid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
        })
    }

    /// The private key as PKCS#8 DER (for the certificate of TOK-010, and
    /// to hand a key over as [`pem`] `PRIVATE KEY`).
    pub fn pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        let der: aws_lc_rs::encoding::Pkcs8V1Der = self.pair.as_der().map_err(crypto)?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs `input` with `alg`.
    pub fn sign(&self, alg: RsaAlg, input: &str) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                alg.encoding(),
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(crypto)?;
        Ok(signature)
    }

    /// The public key as a JWK (`kid`, `alg` RS256).
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }
}

/// A P-256 key pair for ES256.
pub struct EcKey {
    pair: EcdsaKeyPair,
    /// Its key id.
    pub kid: String,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl EcKey {
    /// A fresh P-256 key named `kid`.
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        Ok(Self {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(crypto)?,
            kid: kid.into(),
        })
    }

    /// An ES256 signature (`r || s`, 64 bytes).
    pub fn sign(&self, input: &str) -> Result<Vec<u8>, KeyError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(crypto)?;
        Ok(signature.as_ref().to_vec())
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 || x || y.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        json!({ "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid, "x": b64(x), "y": b64(y) })
    }
}

/// The attacker's keys, made once per suite run.
#[derive(Debug)]
pub struct AttackerKeys {
    /// RSA-2048.
    pub rsa: RsaKey,
    /// P-256.
    pub ec: EcKey,
    /// A self-signed certificate of `rsa` (DER).
    pub certificate: Vec<u8>,
}

impl AttackerKeys {
    /// Fresh keys and certificate.
    pub fn generate() -> Result<Self, KeyError> {
        let rsa = RsaKey::generate("tenantry-attacker-rsa")?;
        let ec = EcKey::generate("tenantry-attacker-ec")?;
        let pkcs8 = rsa.pkcs8()?;
        let signing = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(crypto)?;
        let params =
            rcgen::CertificateParams::new(vec!["attacker.tenantry.invalid".to_string()]).map_err(crypto)?;
        let certificate = params.self_signed(&signing).map_err(crypto)?.der().to_vec();
        Ok(Self { rsa, ec, certificate })
    }

    /// A JWKS with the attacker's RSA key under `kid` and under its own kid.
    pub fn jwks_as(&self, kid: &str) -> Value {
        let mut under_kid = self.rsa.jwk();
        under_kid["kid"] = kid.into();
        json!({ "keys": [under_kid, self.rsa.jwk(), self.ec.jwk()] })
    }

    /// The certificate as PEM (what an `x5u` URL serves).
    pub fn certificate_pem(&self) -> String {
        pem("CERTIFICATE", &self.certificate)
    }
}

/// The first PEM block of `text`: its label and its bytes.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines
        .next()
        .ok_or_else(|| KeyError::Pem("no `-----BEGIN …-----` line: not a PEM file".into()))?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| KeyError::Pem(format!("a malformed PEM header `{begin}`")))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| KeyError::Pem(format!("the `{label}` block is not base64 ({e})")))?;
            return Ok((label, der));
        }
        if line.contains(':') {
            return Err(KeyError::Pem(format!(
                "the `{label}` block has headers (`{line}`): an encrypted key; decrypt it first"
            )));
        }
        body.push_str(line);
    }
    Err(KeyError::Pem(format!("no `{end}` line")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::PublicKeyX509Der;

    #[test]
    fn spki_from_a_jwk_matches_the_crypto_library_byte_for_byte() {
        let key = RsaKey::generate("k").unwrap();
        let encodings = PublicEncodings::from_jwk(&key.jwk()).unwrap();
        let spki: PublicKeyX509Der = key.pair.public_key().as_der().unwrap();
        assert_eq!(encodings.spki_der, spki.as_ref());
        let pem = encodings.spki_pem();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(encodings
            .pkcs1_pem()
            .starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
        // The SPKI wraps the PKCS#1 key.
        assert!(encodings
            .spki_der
            .windows(encodings.pkcs1_der.len())
            .any(|w| w == encodings.pkcs1_der));
        let secrets = encodings.hmac_secrets();
        assert_eq!(secrets.len(), 8);
        assert!(!secrets[1].1.ends_with(b"\n") && secrets[0].1.ends_with(b"\n"));
        assert!(PublicEncodings::from_jwk(&json!({ "kty": "EC", "x": "AA", "y": "AA" })).is_err());
    }

    #[test]
    fn a_pem_private_key_loads_and_finds_its_name_in_the_jwks() {
        let key = RsaKey::generate("theirs").unwrap();
        let text = format!(
            "a comment before the block\n{}",
            pem("PRIVATE KEY", &key.pkcs8().unwrap())
        );
        let loaded = RsaKey::from_pem("", &text).unwrap();
        let other = RsaKey::generate("other").unwrap();
        let jwks = json!({ "keys": [other.jwk(), { "kty": "EC", "kid": "ec" }, key.jwk()] });
        assert_eq!(loaded.kid_in(&jwks).as_deref(), Some("theirs"));
        assert_eq!(loaded.kid_in(&json!({ "keys": [other.jwk()] })), None);
        assert_eq!(loaded.kid_in(&json!({})), None);
        // It signs as the original would verify.
        let signature = loaded.sign(RsaAlg::Rs256, "a.b").unwrap();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            key.pair.public_key().as_ref(),
        )
        .verify(b"a.b", &signature)
        .unwrap();
    }

    #[test]
    fn a_bad_pem_says_what_is_wrong() {
        let key = RsaKey::generate("k").unwrap();
        let der = key.pkcs8().unwrap();
        let cases = [
            ("not a key".to_string(), "not a PEM file"),
            (pem("PUBLIC KEY", &der), "expected an RSA private key"),
            (pem("PRIVATE KEY", &der[..40]), "not an RSA private key"),
            (pem("PRIVATE KEY", &der).replace("-----END PRIVATE KEY-----\n", ""), "no `-----END PRIVATE KEY-----` line"),
            ("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n".into(), "not base64"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
                "encrypted key",
            ),
        ];
        for (text, expected) in cases {
            let error = RsaKey::from_pem("", &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[test]
    fn der_integers_and_lengths_are_minimal() {
        assert_eq!(der_uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(der_uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_uint(&[]), vec![2, 1, 0]);
        assert_eq!(der_len(300), vec![0x82, 1, 44]);
    }

    #[test]
    fn attacker_signatures_verify_with_the_attacker_public_keys() {
        use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256};
        let keys = AttackerKeys::generate().unwrap();
        let sig = keys.rsa.sign(RsaAlg::Rs256, "a.b").unwrap();
        let spki = PublicEncodings::from_jwk(&keys.rsa.jwk()).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki.pkcs1_der)
            .verify(b"a.b", &sig)
            .unwrap();
        let sig = keys.ec.sign("a.b").unwrap();
        assert_eq!(sig.len(), 64);
        let point = keys.ec.pair.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(b"a.b", &sig)
            .unwrap();
        assert_eq!(keys.certificate[0], 0x30);
        assert!(keys.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(keys.jwks_as("real")["keys"][0]["kid"], "real");
    }
}
