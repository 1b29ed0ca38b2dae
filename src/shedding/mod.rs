//! Load shedding that needs no rule written in advance: a fair share per sender
//! (`rate`), and backpressure from Mastodon's Sidekiq queue (`sidekiq`) by priority class
//! (`classes`). Every shed delivery is answered with a status the sender retries (429 or
//! 503 with `Retry-After`): nothing is lost, only deferred.

pub mod classes;
pub mod rate;
pub mod sidekiq;
