//! Clerk's v2 session-token encoding of organization permissions.
//!
//! Permissions are `org:<feature>:<perm>` keys. A v2 token does not list them;
//! it carries
//! - `fea`: the features, comma-separated, each prefixed by its scopes
//!   (`o:` org, `u:` user, `uo:`/`ou:` both), e.g. `o:impersonation,u:payments`;
//! - `o.per`: the permission names used by the org's features, e.g. `read,manage`;
//! - `o.fpm`: one bitmask per org-scoped feature of `fea`, in order, where bit
//!   `i` grants `o.per[i]`: `fea=o:a,o:b, per=read,manage, fpm=1,3` means
//!   `org:a:read`, `org:b:read`, `org:b:manage`.
//!
//! An org feature without a bitmask grants nothing, as in Clerk's parser.

use std::collections::BTreeMap;

/// The encoded form carried by a v2 token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedPermissions {
    /// `fea`
    pub fea: String,
    /// `o.per`
    pub per: String,
    /// `o.fpm`
    pub fpm: String,
}

/// Why a permission key cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// Not of the form `org:<feature>:<perm>` with non-empty parts free of `,` and `:`.
    #[error("`{0}` is not a permission key of the form org:<feature>:<perm>")]
    Malformed(String),
    /// More distinct permission names than a bitmask can hold.
    #[error("more than 63 distinct permission names")]
    TooMany,
}

fn part_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains([',', ':']) && !s.chars().any(char::is_whitespace)
}

/// Encodes `org:<feature>:<perm>` keys. Features appear in first-seen order,
/// permission names in first-seen order; duplicates are ignored.
pub fn encode(permissions: &[String]) -> Result<EncodedPermissions, PermissionError> {
    let mut features: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut masks: BTreeMap<usize, u64> = BTreeMap::new();
    for key in permissions {
        let mut parts = key.splitn(3, ':');
        let (Some("org"), Some(feature), Some(perm)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PermissionError::Malformed(key.clone()));
        };
        if !part_ok(feature) || !part_ok(perm) {
            return Err(PermissionError::Malformed(key.clone()));
        }
        let f = match features.iter().position(|f| *f == feature) {
            Some(i) => i,
            None => {
                features.push(feature);
                features.len() - 1
            }
        };
        let n = match names.iter().position(|n| *n == perm) {
            Some(i) => i,
            None => {
                if names.len() == 63 {
                    return Err(PermissionError::TooMany);
                }
                names.push(perm);
                names.len() - 1
            }
        };
        *masks.entry(f).or_default() |= 1 << n;
    }
    Ok(EncodedPermissions {
        fea: features
            .iter()
            .map(|f| format!("o:{f}"))
            .collect::<Vec<_>>()
            .join(","),
        per: names.join(","),
        fpm: (0..features.len())
            .map(|f| masks.get(&f).copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// Decodes the org permissions a v2 token grants. Malformed parts grant
/// nothing (fail closed): a bitmask that does not parse, a bit beyond `per`.
pub fn decode(fea: &str, per: &str, fpm: &str) -> Vec<String> {
    let org_features: Vec<&str> = fea
        .split(',')
        .filter_map(|entry| {
            let (scopes, name) = entry.split_once(':')?;
            (scopes.contains('o') && scopes.chars().all(|c| c == 'o' || c == 'u') && part_ok(name))
                .then_some(name)
        })
        .collect();
    let names: Vec<&str> = if per.is_empty() {
        Vec::new()
    } else {
        per.split(',').collect()
    };
    let masks: Vec<&str> = if fpm.is_empty() {
        Vec::new()
    } else {
        fpm.split(',').collect()
    };
    let mut granted = Vec::new();
    for (feature, mask) in org_features.iter().zip(masks) {
        let Ok(mask) = mask.trim().parse::<u64>() else {
            continue;
        };
        for (bit, name) in names.iter().enumerate().take(64) {
            if mask & (1 << bit) != 0 && part_ok(name) {
                granted.push(format!("org:{feature}:{name}"));
            }
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn strings(v: &[&str]) -> Vec<String> {
        sorted(v.iter().map(|s| s.to_string()).collect())
    }

    // The cases below are the ones Clerk documents for its own parser.
    #[test]
    fn decodes_clerks_documented_cases() {
        assert_eq!(
            sorted(decode("o:impersonation,o:memberships", "read,manage", "1,3")),
            strings(&[
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage"
            ])
        );
        assert_eq!(
            sorted(decode(
                "uo:impersonation,o:memberships,uo:feature3",
                "read,manage",
                "1,3,1"
            )),
            strings(&[
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage",
                "org:feature3:read"
            ])
        );
        assert_eq!(
            sorted(decode("ou:memberships,u:impersonation", "read,manage", "3")),
            strings(&["org:memberships:read", "org:memberships:manage"])
        );
        assert_eq!(
            sorted(decode(
                "o:repositories,o:projects",
                "read,create,update,delete,revoke",
                "7,21"
            )),
            strings(&[
                "org:repositories:read",
                "org:repositories:create",
                "org:repositories:update",
                "org:projects:read",
                "org:projects:update",
                "org:projects:revoke"
            ])
        );
        assert_eq!(
            sorted(decode(
                "o:repositories,o:projects,o:webhooks,o:impersonation",
                "read,manage",
                "1,2,3"
            )),
            strings(&[
                "org:repositories:read",
                "org:projects:manage",
                "org:webhooks:read",
                "org:webhooks:manage"
            ])
        );
        // A feature without a bitmask, and user-only features, grant nothing.
        assert_eq!(
            sorted(decode(
                "o:impersonation,o:memberships,o:feature3",
                "read,manage",
                "1,3"
            )),
            strings(&[
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage"
            ])
        );
        assert!(decode("u:impersonation,u:memberships", "", "").is_empty());
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let permissions = strings(&[
            "org:billing:manage",
            "org:billing:read",
            "org:email:read",
            "org:sys_memberships:manage",
            "org:projects:write",
        ]);
        let encoded = encode(&permissions).unwrap();
        assert_eq!(
            sorted(decode(&encoded.fea, &encoded.per, &encoded.fpm)),
            permissions
        );
        assert_eq!(encode(&[]).unwrap(), EncodedPermissions::default());
    }

    #[test]
    fn malformed_keys_are_refused_and_malformed_claims_grant_nothing() {
        for bad in [
            "admin",
            "org:billing",
            "org::read",
            "org:a,b:read",
            "user:x:read",
            "org:x:re ad",
        ] {
            assert!(encode(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(decode("o:x", "read", "not-a-number").is_empty());
        assert!(
            decode("o:x", "read", "2").is_empty(),
            "bit beyond per grants nothing"
        );
        assert!(decode("x:y,o:", "read", "1,1").is_empty());
    }
}
