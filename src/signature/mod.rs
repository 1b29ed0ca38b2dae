//! HTTP signatures on inbox POSTs (draft-cavage, as Mastodon accepts it).
//!
//! Split into the cheap part and the expensive part so the pipeline can put policy checks
//! between them: [`prepare`] parses the `Signature` header and runs every check that needs no
//! key (required headers, time window, body digest) and builds the signing string(s);
//! [`Prepared::verify`] does the public-key operation once the key is known.
//!
//! OWNER: signature helper. Keep this public surface; add to it as needed.

use crate::config::SignatureConfig;
use std::time::SystemTime;

pub mod crypto;
pub mod signing_key;
pub use signing_key::SigningKey;
pub use crypto::{KeyParseError, PublicKey};

/// A request whose signature header parsed and passed every key-independent check.
#[derive(Debug)]
pub struct Prepared {
    /// The `keyId` parameter, verbatim.
    pub key_id: String,
    /// Normalised host of the keyId (lowercase, no port), for the blocked-key-host check.
    /// For `acct:user@host` keyIds, the part after the last `@`.
    pub key_host: String,
}

/// Why a signature was refused. `Display` is the precise message sent to the client as
/// `{"error": "..."}`; [`SigError::reason`] is the bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("Request not signed")]
    NotSigned,
}

impl SigError {
    /// A fixed word for the `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SigError::NotSigned => "not_signed",
        }
    }
}

/// Parses and pre-checks the signature of an inbox request.
/// `path_and_query` is the request target as received; `body` is the complete body.
pub fn prepare(
    _method: &http::Method,
    _path_and_query: &str,
    _headers: &http::HeaderMap,
    _body: &[u8],
    _now: SystemTime,
    _cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    todo!("signature helper")
}

impl Prepared {
    /// Verifies the signature with `key` (trying path+query, then path only, for
    /// `(request-target)`).
    pub fn verify(&self, _key: &PublicKey) -> Result<(), SigError> {
        todo!("signature helper")
    }
}
