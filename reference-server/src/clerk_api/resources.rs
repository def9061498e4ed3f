//! Clerk's JSON objects, rendered from the identity store's records.

use serde_json::{json, Value};

use crate::identity::service::{status_of, SignInStatus};
use crate::identity::store::{Membership, Organization, Session, SignIn, StoredTemplate, User};

/// A `user` object.
pub fn user(u: &User) -> Value {
    json!({
        "object": "user",
        "id": u.id,
        "external_id": null,
        "username": null,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "image_url": "",
        "has_image": false,
        "primary_email_address_id": u.email_address_id,
        "primary_phone_number_id": null,
        "primary_web3_wallet_id": null,
        "password_enabled": u.password_enabled,
        "two_factor_enabled": u.two_factor_enabled,
        "totp_enabled": false,
        "backup_code_enabled": false,
        "email_addresses": [{
            "object": "email_address",
            "id": u.email_address_id,
            "email_address": u.email,
            "reserved": false,
            "verification": { "object": "verification_admin", "status": "verified", "strategy": "admin",
                              "attempts": null, "expire_at": null },
            "linked_to": [],
        }],
        "phone_numbers": [],
        "web3_wallets": [],
        "external_accounts": [],
        "enterprise_accounts": [],
        "public_metadata": u.public_metadata,
        "private_metadata": u.private_metadata,
        "unsafe_metadata": u.unsafe_metadata,
        "last_sign_in_at": u.last_sign_in_at,
        "banned": u.banned,
        "locked": false,
        "lockout_expires_in_seconds": null,
        "verification_attempts_remaining": null,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "last_active_at": null,
        "create_organization_enabled": true,
        "create_organizations_limit": null,
        "delete_self_enabled": true,
        "legal_accepted_at": null,
    })
}

/// The frontend's view of a user: no private metadata.
pub fn user_public(u: &User) -> Value {
    let mut value = user(u);
    if let Some(map) = value.as_object_mut() {
        map.remove("private_metadata");
    }
    value
}

/// An `organization` object. `private` adds private metadata (Backend API only).
pub fn organization(o: &Organization, private: bool) -> Value {
    let mut value = json!({
        "object": "organization",
        "id": o.id,
        "name": o.name,
        "slug": o.slug,
        "image_url": "",
        "has_image": false,
        "max_allowed_memberships": o.max_allowed_memberships,
        "admin_delete_enabled": true,
        "public_metadata": o.public_metadata,
        "created_by": o.created_by,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    });
    if let Some(map) = value.as_object_mut() {
        if private {
            map.insert("private_metadata".into(), o.private_metadata.clone());
        }
        if let Some(count) = o.members_count {
            map.insert("members_count".into(), count.into());
        }
    }
    value
}

/// An `organization_membership` object.
pub fn membership(m: &Membership, private: bool) -> Value {
    let mut value = json!({
        "object": "organization_membership",
        "id": m.id,
        "role": m.role,
        "role_name": m.role_name,
        "permissions": m.permissions,
        "public_metadata": m.public_metadata,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "organization": organization(&m.organization, private),
        "public_user_data": {
            "user_id": m.user.user_id,
            "identifier": m.user.identifier,
            "first_name": m.user.first_name,
            "last_name": m.user.last_name,
            "image_url": "",
            "has_image": false,
        },
    });
    if private {
        if let Some(map) = value.as_object_mut() {
            map.insert("private_metadata".into(), m.private_metadata.clone());
        }
    }
    value
}

/// A `session` object.
pub fn session(s: &Session) -> Value {
    json!({
        "object": "session",
        "id": s.id,
        "client_id": s.client_id,
        "user_id": s.user_id,
        "status": s.status,
        "last_active_organization_id": s.last_active_organization_id,
        "last_active_at": s.last_active_at,
        "expire_at": s.expire_at,
        "abandon_at": s.expire_at,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "actor": null,
    })
}

/// A `sign_in` object (Frontend API). The factors a status needs are listed
/// so a client knows its next step without guessing.
pub fn sign_in(a: &SignIn) -> Value {
    let status = status_of(a);
    let first_factors = match status {
        SignInStatus::NeedsFirstFactor => json!([{ "strategy": "password" }]),
        _ => json!([]),
    };
    let second_factors = if status.needs_code() {
        json!([{ "strategy": "email_code", "safe_identifier": a.identifier }])
    } else {
        json!([])
    };
    let second_factor_verification = if status.needs_code() {
        json!({
            "status": if a.code_pending { "unverified" } else { "unprepared" },
            "strategy": "email_code",
            "attempts": a.code_attempts,
            "expire_at": a.code_expires_at,
        })
    } else {
        Value::Null
    };
    json!({
        "object": "sign_in_attempt",
        "id": a.id,
        "status": status.as_str(),
        "identifier": a.identifier,
        "supported_identifiers": ["email_address"],
        "supported_first_factors": first_factors,
        "supported_second_factors": second_factors,
        "first_factor_verification": a.first_factor_at.map(|_| json!({ "status": "verified", "strategy": "password" })),
        "second_factor_verification": second_factor_verification,
        "created_session_id": a.created_session_id,
        "abandon_at": a.expire_at,
    })
}

/// A `client` object: the device's sessions and its current sign-in.
pub fn client(id: &str, sessions: &[Session], current_sign_in: Option<&SignIn>) -> Value {
    let active: Vec<&Session> = sessions.iter().filter(|s| s.status == "active").collect();
    json!({
        "object": "client",
        "id": id,
        "session_ids": active.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "sessions": active.iter().map(|s| session(s)).collect::<Vec<_>>(),
        "sign_in": current_sign_in.map(sign_in),
        "sign_up": null,
        "last_active_session_id": active.first().map(|s| s.id.clone()),
    })
}

/// A `jwt_template` object.
pub fn jwt_template(t: &StoredTemplate) -> Value {
    json!({
        "object": "jwt_template",
        "id": t.id,
        "name": t.template.name,
        "claims": t.template.claims,
        "lifetime": t.template.lifetime,
        "allowed_clock_skew": t.template.allowed_clock_skew,
        "custom_signing_key": false,
        "signing_algorithm": "RS256",
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    })
}

/// A `token` object.
pub fn token(jwt: &str) -> Value {
    json!({ "object": "token", "jwt": jwt })
}

/// A `deleted_object`.
pub fn deleted(object: &str, id: &str) -> Value {
    json!({ "object": object, "id": id, "deleted": true })
}
