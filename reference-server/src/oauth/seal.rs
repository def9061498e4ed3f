//! Provider tokens at rest: AES-256-GCM with a random 96-bit nonce, the org
//! and provider as associated data (a ciphertext moved to another org's row
//! does not open). Stored as nonce || ciphertext || tag.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

/// The sealing key (from `oauth.token_key`).
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Why a token could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key is not 32 bytes.
    #[error("oauth.token_key must be 32 bytes (base64)")]
    BadKey,
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
    /// Wrong key, wrong org/provider, or tampered data.
    #[error("the sealed token does not open")]
    Open,
}

fn aad(org: &str, provider: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(org.len() + provider.len() + 1);
    aad.extend_from_slice(org.as_bytes());
    aad.push(0);
    aad.extend_from_slice(provider.as_bytes());
    aad
}

impl Sealer {
    /// A sealer with a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `plaintext` for `org` and `provider`.
    pub fn seal(&self, org: &str, provider: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce_bytes = crate::ids::random_bytes::<NONCE_LEN>();
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad(org, provider)),
                &mut data,
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Opens what [`Sealer::seal`] made for the same org and provider.
    pub fn open(&self, org: &str, provider: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(org, provider)), &mut data)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let sealed = s.seal("org_a", "shopify", b"token").unwrap();
        assert_eq!(s.open("org_a", "shopify", &sealed).unwrap(), b"token");
        assert_ne!(
            s.seal("org_a", "shopify", b"token").unwrap(),
            sealed,
            "fresh nonce"
        );
        assert_eq!(s.open("org_b", "shopify", &sealed), Err(SealError::Open));
        assert_eq!(s.open("org_a", "quickbooks", &sealed), Err(SealError::Open));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(s.open("org_a", "shopify", &tampered), Err(SealError::Open));
        assert!(Sealer::new(&[0u8; 16]).is_err());
        assert!(!sealed.windows(5).any(|w| w == b"token"));
    }
}
