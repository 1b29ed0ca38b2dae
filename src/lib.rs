//! inboxguard: a verifying, filtering reverse proxy for Mastodon's ActivityPub inboxes.
#![forbid(unsafe_code)]

pub mod config;
pub mod forward;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod signature;
