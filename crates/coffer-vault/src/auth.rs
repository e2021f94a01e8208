//! Bearer-token authentication: JWT with `sub` = account, `aud` = vault id, `exp`
//! required, `nbf` and `iat` (when present) not in the future. Tenant keys are EdDSA
//! (selected by the header's `kid` = tenant name); tokens without `kid` use the
//! development HS256 key (tenant `dev`), accepted only while no tenant key is configured
//! or when the operator asks for it (`serve --dev-tokens`): otherwise anyone who read the
//! key file could mint tokens for every account of every tenant's app.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Seconds of clock skew tolerated for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;

/// The OAuth-style scope by which an app's auth server allows replacing or deleting a
/// live record without the owner's proof (the "lost password and recovery key" flow).
pub const RESET_SCOPE: &str = "coffer.reset";

/// Claims the vault reads.
#[derive(Serialize, Deserialize)]
pub struct Claims {
    /// Account id.
    pub sub: String,
    /// Vault id (hex).
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    #[serde(default)]
    pub iat: u64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Space-separated scopes (RFC 6749 section 3.3); see [`RESET_SCOPE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Whether a `scope` claim grants [`RESET_SCOPE`]: one of its space-separated entries
/// is exactly `coffer.reset` (case-sensitive, as OAuth scopes are).
pub fn has_reset_scope(scope: Option<&str>) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|w| w == RESET_SCOPE))
}

/// An authenticated caller.
pub struct Account {
    /// Tenant name (`dev` for HS256 tokens).
    pub tenant: String,
    /// `tenant || 0x00 || account`: what the core turns into the credential id (the
    /// host holds no credential-id key).
    pub name: Vec<u8>,
    /// The token carries [`RESET_SCOPE`]: its auth server allows replacing or deleting a
    /// live record without the owner's proof.
    pub reset_scope: bool,
}

/// Token verification keys.
pub struct Auth {
    audience: String,
    dev_key: DecodingKey,
    dev_tokens: bool,
    tenants: HashMap<String, DecodingKey>,
}

impl Auth {
    /// `tenants`: name -> Ed25519 public key. Development HS256 tokens are accepted only
    /// if `tenants` is empty, unless [`Auth::allow_dev_tokens`] says otherwise.
    pub fn new(audience: String, dev_secret: &[u8], tenants: HashMap<String, DecodingKey>) -> Self {
        Self {
            audience,
            dev_key: DecodingKey::from_secret(dev_secret),
            dev_tokens: tenants.is_empty(),
            tenants,
        }
    }

    /// Also accepts development HS256 tokens beside tenant keys (`serve --dev-tokens`).
    pub fn allow_dev_tokens(mut self) -> Self {
        self.dev_tokens = true;
        self
    }

    /// `tenant || 0x00 || account`, the name the core derives the credential id from.
    pub fn account_name(tenant: &str, account: &str) -> Vec<u8> {
        let mut n = Vec::with_capacity(tenant.len() + 1 + account.len());
        n.extend_from_slice(tenant.as_bytes());
        n.push(0);
        n.extend_from_slice(account.as_bytes());
        n
    }

    /// Verifies the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Account, ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "no Authorization: Bearer token; get one from your app's auth server",
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("bad_token", "Authorization header is not `Bearer <jwt>`")
            })?;
        self.verify(token)
    }

    /// Verifies one JWT (the part after `Bearer `).
    pub fn verify(&self, token: &str) -> Result<Account, ApiError> {
        let head = decode_header(token).map_err(|_| {
            ApiError::unauthorized(
                "bad_token",
                "token is not a JWT with a supported alg (EdDSA, or HS256 for development)",
            )
        })?;
        // The algorithm comes from the key we chose by `kid`, never from the token's
        // header: that is what stops an HS256 token "signed" with a public key.
        let (tenant, key, alg) = match &head.kid {
            None if !self.dev_tokens => {
                return Err(ApiError::unauthorized(
                    "dev_tokens_disabled",
                    "token has no kid, so it is a development HS256 token, and this vault has tenant keys configured; use a token from your app's auth server (kid = tenant name), or start the vault with --dev-tokens for development",
                ));
            }
            None => ("dev".to_string(), &self.dev_key, Algorithm::HS256),
            Some(kid) => {
                let key = self.tenants.get(kid).ok_or_else(|| {
                    ApiError::unauthorized(
                        "unknown_tenant",
                        format!("no tenant key named {kid:?} is configured"),
                    )
                })?;
                (kid.clone(), key, Algorithm::EdDSA)
            }
        };
        let mut v = Validation::new(alg);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        let data = decode::<Claims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "token expired; get a fresh one")
                }
                K::ImmatureSignature => ApiError::unauthorized(
                    "token_not_yet_valid",
                    "token's nbf is in the future; check the clocks of the auth server and the vault",
                ),
                K::InvalidAudience => {
                    ApiError::unauthorized("wrong_audience", "token was issued for another vault")
                }
                K::InvalidAlgorithm => ApiError::unauthorized(
                    "wrong_algorithm",
                    format!(
                        "token's alg is not {alg:?}: tenant tokens (with kid) must be EdDSA, development tokens (no kid) HS256"
                    ),
                ),
                K::InvalidSignature => {
                    ApiError::unauthorized("bad_signature", "token signature does not verify")
                }
                _ => ApiError::unauthorized(
                    "bad_token",
                    "token is malformed or lacks sub/aud/exp",
                ),
            }
        })?;
        let claims = data.claims;
        if claims.iat > crate::unix_now().saturating_add(LEEWAY_SECS) {
            return Err(ApiError::unauthorized(
                "token_issued_in_future",
                "token's iat is in the future; check the clocks of the auth server and the vault",
            ));
        }
        if claims.sub.is_empty() {
            return Err(ApiError::unauthorized(
                "bad_token",
                "token has an empty sub",
            ));
        }
        Ok(Account {
            name: Self::account_name(&tenant, &claims.sub),
            reset_scope: has_reset_scope(claims.scope.as_deref()),
            tenant,
        })
    }
}

/// Mints a development HS256 token valid for `ttl_secs` (negative: already expired),
/// with `scope` as its `scope` claim if given.
pub fn mint_dev_token(
    secret: &[u8],
    audience: &str,
    account: &str,
    ttl_secs: i64,
    scope: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = crate::unix_now();
    let claims = Claims {
        sub: account.to_string(),
        aud: audience.to_string(),
        exp: now.saturating_add_signed(ttl_secs),
        iat: now,
        nbf: None,
        scope: scope.map(str::to_string),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_scope_is_one_exact_space_separated_entry() {
        for (scope, want) in [
            (None, false),
            (Some(""), false),
            (Some("coffer.reset"), true),
            (Some("openid coffer.reset profile"), true),
            (Some("profile coffer.reset"), true),
            (Some("coffer.resetx"), false),
            (Some("xcoffer.reset"), false),
            (Some("Coffer.Reset"), false),
            (Some("coffer.reset,profile"), false),
            (Some("openid profile"), false),
        ] {
            assert_eq!(has_reset_scope(scope), want, "{scope:?}");
        }
    }

    fn auth() -> Auth {
        Auth::new("aud".into(), &[7; 32], HashMap::new(), &[1; 32])
    }

    fn token(scope: serde_json::Value) -> String {
        let mut claims = serde_json::json!({
            "sub": "alice", "aud": "aud", "exp": crate::unix_now() + 60,
        });
        if !scope.is_null() {
            claims["scope"] = scope;
        }
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .expect("HS256 encoding of a JSON object cannot fail")
    }

    #[test]
    fn verified_tokens_carry_the_reset_scope_only_when_granted() {
        let a = auth();
        let scope = |v| a.verify(&token(v)).map(|acct| acct.reset_scope);
        assert!(matches!(scope(serde_json::Value::Null), Ok(false)));
        assert!(matches!(scope("openid coffer.reset".into()), Ok(true)));
        assert!(matches!(scope("openid".into()), Ok(false)));
        // A scope that is not a string is refused rather than read as "no reset".
        let e = scope(serde_json::json!(["coffer.reset"])).err();
        assert_eq!(e.map(|e| e.code), Some("bad_token"));
        let minted = mint_dev_token(&[7; 32], "aud", "bob", 60, Some(RESET_SCOPE))
            .expect("minting a dev token");
        assert!(a.verify(&minted).is_ok_and(|acct| acct.reset_scope));
        let plain = mint_dev_token(&[7; 32], "aud", "bob", 60, None).expect("minting");
        assert!(a.verify(&plain).is_ok_and(|acct| !acct.reset_scope));
    }
}
