//! Who may change a live record.

/// How a caller may change a live record. The host decides which applies from the
/// request and the token; the core checks it against the record.
#[derive(Clone, Copy, Debug)]
pub enum Authority<'a> {
    /// The token alone: enough only where no live record exists.
    Token,
    /// A signature by the record's owner key over [`proof_message`] at `generation`.
    OwnerProof {
        /// The record generation the client signed (from `status`).
        generation: u64,
        /// The Ed25519 signature.
        signature: &'a [u8],
    },
    /// The app's auth server explicitly allowed replacing or deleting without proof
    /// (a token with the `coffer.reset` scope: the user lost password and recovery key).
    ResetScope,
}
