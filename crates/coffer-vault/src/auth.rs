//! Bearer-token authentication: JWT with `sub` = account, `aud` = vault id, `exp`
//! required. Tenant keys are EdDSA (selected by the header's `kid` = tenant name); tokens
//! without `kid` use the development HS256 key (tenant `dev`).

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use coffer_vault_core::CredentialId;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

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
    /// OAuth-style space-separated scopes; `coffer.reset` is the reset scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// An authenticated caller.
pub struct Account {
    /// Tenant name (`dev` for HS256 tokens).
    pub tenant: String,
    /// Where the caller's record lives.
    pub credential_id: CredentialId,
    /// The token carries the `coffer.reset` scope: the app's auth server allows replacing
    /// or deleting a live record without the owner proof.
    pub reset_scope: bool,
}

/// Token verification keys and the credential-id key.
pub struct Auth {
    audience: String,
    dev_key: DecodingKey,
    tenants: HashMap<String, DecodingKey>,
    credential_key: hmac::Key,
}

impl Auth {
    /// `tenants`: name -> Ed25519 public key PEM.
    pub fn new(
        audience: String,
        dev_secret: &[u8],
        tenants: HashMap<String, DecodingKey>,
        credential_id_key: &[u8],
    ) -> Self {
        Self {
            audience,
            dev_key: DecodingKey::from_secret(dev_secret),
            tenants,
            credential_key: hmac::Key::new(hmac::HMAC_SHA256, credential_id_key),
        }
    }

    /// `HMAC-SHA256(credential-id key, tenant || 0x00 || account)`.
    pub fn credential_id(&self, tenant: &str, account: &str) -> CredentialId {
        let mut ctx = hmac::Context::with_key(&self.credential_key);
        ctx.update(tenant.as_bytes());
        ctx.update(&[0]);
        ctx.update(account.as_bytes());
        let tag = ctx.sign();
        let mut id = [0u8; 32];
        id.copy_from_slice(tag.as_ref());
        CredentialId::from_bytes(id)
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
        let head = decode_header(token)
            .map_err(|_| ApiError::unauthorized("bad_token", "token is not a JWT"))?;
        let (tenant, key, alg) = match &head.kid {
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
        v.leeway = 5;
        let data = decode::<Claims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "token expired; get a fresh one")
                }
                K::InvalidAudience => {
                    ApiError::unauthorized("wrong_audience", "token was issued for another vault")
                }
                K::InvalidSignature | K::InvalidAlgorithm => {
                    ApiError::unauthorized("bad_signature", "token signature does not verify")
                }
                _ => ApiError::unauthorized("bad_token", "token is malformed or lacks sub/aud/exp"),
            }
        })?;
        if data.claims.sub.is_empty() {
            return Err(ApiError::unauthorized(
                "bad_token",
                "token has an empty sub",
            ));
        }
        let credential_id = self.credential_id(&tenant, &data.claims.sub);
        let reset_scope = data
            .claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == "coffer.reset"));
        Ok(Account {
            tenant,
            credential_id,
            reset_scope,
        })
    }
}

/// Mints a development HS256 token valid for `ttl_secs` (negative: already expired).
pub fn mint_dev_token(
    secret: &[u8],
    audience: &str,
    account: &str,
    ttl_secs: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = crate::unix_now();
    let exp = now.saturating_add_signed(ttl_secs);
    let claims = Claims {
        sub: account.to_string(),
        aud: audience.to_string(),
        exp,
        iat: now,
        scope: None,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}
