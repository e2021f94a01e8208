//! Per-account token-bucket rate limits on the expensive and guess-spending calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use coffer_vault_core::CredentialId;

/// A limiter allowing `per_minute` calls per account, bursting up to that many.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<CredentialId, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute == 0` turns limits off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok(())` if the call may go ahead, else the seconds to wait.
    pub fn check(&self, id: &CredentialId, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Forget full buckets so memory stays bounded.
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let (tokens, at) = map.entry(*id).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil() as u64)
        }
    }
}
