//! The decision: what one verified request's facts meet in a snapshot, as a `Decision` that
//! names the rule behind it. Pure: no I/O, no allocation unless actor rules exist.

use super::actors::ActorRule;
use super::snapshot::Snapshot;
use super::vocab::{DomainRule, PolicyMode, Severity};

/// What `decide` needs to know about one request, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The keyId's host, normalised (`host::normalize` / `host::of_uri`).
    pub key_host: &'a str,
    /// The activity's `actor` host, normalised, when the activity names one.
    pub actor_host: Option<&'a str>,
    /// The activity's `type` (`Create`, `Flag`, …), case-sensitive as in ActivityStreams.
    pub activity_type: Option<&'a str>,
    /// The activity's `actor` URI as sent, for actor rules.
    pub actor: Option<&'a str>,
    /// The `attributedTo` of the activity's object as sent, for actor rules.
    pub attributed_to: Option<&'a str>,
}

/// Which of the request's hosts a rejecting rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    KeyHost,
    ActorHost,
}

/// Which of the request's accounts an actor rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorParty {
    /// The activity's `actor`.
    Actor,
    /// The `attributedTo` of the activity's object (its author).
    AttributedTo,
}

impl ActorParty {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorParty::Actor => "actor",
            ActorParty::AttributedTo => "attributedTo",
        }
    }
}

/// The policy verdict. Each variant names the rule that decided it, so the caller can log the
/// rule's domain (or actor), source file and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Pass to Mastodon. `rule` is the harsher matching rule (silence, noop), if any.
    Forward { rule: Option<&'a DomainRule> },
    /// Refuse with 403: `host` (the keyId's or the actor's, per `party`) is suspended.
    Reject {
        party: Party,
        host: &'a str,
        rule: &'a DomainRule,
    },
    /// Refuse with 403: allowlist mode, and no allow entry names `host`.
    NotAllowed { party: Party, host: &'a str },
    /// Refuse with 403: the account `actor` (the activity's actor, or its object's author)
    /// is suspended by an actor rule.
    ActorSuspended {
        party: ActorParty,
        actor: &'a str,
        rule: &'a ActorRule,
    },
    /// Acknowledge with 202 and do not forward: a report from a `reject_reports` domain.
    Drop { rule: &'a DomainRule },
    /// Forward, but a dry-run `rule` would have stopped the request: rejected for `party`'s
    /// `host` when `party` is set, else dropped as a report from `host`.
    WouldStop {
        party: Option<Party>,
        host: &'a str,
        rule: &'a DomainRule,
    },
    /// Forward, but a dry-run actor rule would have refused it as `ActorSuspended`.
    WouldSuspendActor {
        party: ActorParty,
        actor: &'a str,
        rule: &'a ActorRule,
    },
}

impl<'a> Decision<'a> {
    /// A fixed label per kind, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Forward { .. } => "allowed",
            Decision::Reject {
                party: Party::KeyHost,
                ..
            } => "suspended_key_host",
            Decision::Reject {
                party: Party::ActorHost,
                ..
            } => "suspended_actor_host",
            Decision::NotAllowed { .. } => "not_allowed",
            Decision::ActorSuspended { .. } => "actor_suspended",
            Decision::Drop { .. } => "reject_reports",
            Decision::WouldStop { .. } | Decision::WouldSuspendActor { .. } => {
                self.would().map_or("allowed", |d| d.reason())
            }
        }
    }

    /// The domain rule that decided, if any (for `WouldStop`, the dry-run rule).
    pub fn rule(&self) -> Option<&'a DomainRule> {
        match *self {
            Decision::Forward { rule } => rule,
            Decision::Reject { rule, .. }
            | Decision::Drop { rule }
            | Decision::WouldStop { rule, .. } => Some(rule),
            Decision::NotAllowed { .. }
            | Decision::ActorSuspended { .. }
            | Decision::WouldSuspendActor { .. } => None,
        }
    }

    /// The actor rule that decided, if any.
    pub(crate) fn actor_rule(&self) -> Option<&'a ActorRule> {
        match *self {
            Decision::ActorSuspended { rule, .. } | Decision::WouldSuspendActor { rule, .. } => {
                Some(rule)
            }
            _ => None,
        }
    }

    /// What the deciding rule lists (a domain, or an actor as written), its source and line:
    /// what logs name. `None` for `NotAllowed` (no rule decided) and a bare `Forward`.
    pub fn origin(&self) -> Option<(&'a str, &'a str, usize)> {
        if let Some(rule) = self.actor_rule() {
            return Some((&rule.actor, &rule.source, rule.line));
        }
        self.rule()
            .map(|rule| (&*rule.domain, &*rule.source, rule.line_number()))
    }

    /// The deciding rule's severity, for logs: a domain rule's own, `suspend` for an actor
    /// rule (all one does). `None` where [`Decision::origin`] is.
    pub fn severity(&self) -> Option<Severity> {
        match self.actor_rule() {
            Some(_) => Some(Severity::Suspend),
            None => self.rule().map(|rule| rule.severity),
        }
    }

    /// Whether the request goes on to Mastodon (`Forward`, `WouldStop`, `WouldSuspendActor`).
    pub fn forwards(&self) -> bool {
        matches!(
            self,
            Decision::Forward { .. }
                | Decision::WouldStop { .. }
                | Decision::WouldSuspendActor { .. }
        )
    }

    /// For `WouldStop` and `WouldSuspendActor`, the decision the dry-run rule would have made
    /// if enforced.
    pub fn would(&self) -> Option<Decision<'a>> {
        match *self {
            Decision::WouldStop {
                party: Some(party),
                host,
                rule,
            } => Some(Decision::Reject { party, host, rule }),
            Decision::WouldStop {
                party: None, rule, ..
            } => Some(Decision::Drop { rule }),
            Decision::WouldSuspendActor { party, actor, rule } => {
                Some(Decision::ActorSuspended { party, actor, rule })
            }
            _ => None,
        }
    }
}

impl Snapshot {
    /// The pre-fetch check of one host (the keyId's, or the actor's once the body is parsed):
    /// `NotAllowed` in allowlist mode when no allow entry names it, else `Reject` when an
    /// enforcing rule suspends it. Costs no I/O, so the pipeline runs it before any key fetch.
    pub fn check_host<'a>(&'a self, host: &'a str, party: Party) -> Option<Decision<'a>> {
        if self.mode == PolicyMode::Allowlist && self.allow_for(host).is_none() {
            return Some(Decision::NotAllowed { party, host });
        }
        self.is_suspended(host)
            .map(|rule| Decision::Reject { party, host, rule })
    }

    /// The verdict for one verified request. Pure: facts in, decision out; no allocation
    /// unless actor rules exist (matching an actor URI parses it).
    ///
    /// The enforcing rules decide, in order:
    /// 1. allowlist mode, and no allow entry names the keyId host → `NotAllowed`;
    /// 2. the keyId host's rule is `suspend` → `Reject` (Mastodon: 403 before the key fetch);
    /// 3. allowlist mode, and no allow entry names the actor host → `NotAllowed`;
    /// 4. the actor host's rule is `suspend` → `Reject` (Mastodon refuses to create or process
    ///    actors of a suspended domain);
    /// 5. an actor rule matches the activity's actor, then its object's `attributedTo` →
    ///    `ActorSuspended`;
    /// 6. a `Flag` whose actor host's rule (the keyId host's when the activity names no actor)
    ///    has `reject_reports` → `Drop` (Mastodon's `Flag` handler ignores it; it checks the
    ///    reporting account's domain);
    /// 7. otherwise `Forward`, carrying the harsher of the two hosts' rules for the log.
    ///
    /// When that is `Forward` and dry-run rules exist, the same steps run again as if the
    /// dry-run sources were enforced (longest suffix across both, the harsher on the same
    /// domain); if a dry-run rule would then stop the request, the answer is `WouldStop` (or
    /// `WouldSuspendActor`), which is forwarded too. So a dry-run rule only matters where no
    /// enforcing rule stops the request, and an enforcing rule on a longer suffix shadows it
    /// as it would when enforced.
    pub fn decide<'a>(&'a self, facts: &Facts<'a>) -> Decision<'a> {
        let enforced = self.decide_with(facts, false);
        if !matches!(enforced, Decision::Forward { .. }) || !self.has_dry_run() {
            return enforced;
        }
        match self.decide_with(facts, true) {
            Decision::Reject { party, host, rule } if rule.dry_run => Decision::WouldStop {
                party: Some(party),
                host,
                rule,
            },
            Decision::Drop { rule } if rule.dry_run => Decision::WouldStop {
                party: None,
                host: facts.actor_host.unwrap_or(facts.key_host),
                rule,
            },
            Decision::ActorSuspended { party, actor, rule } if rule.dry_run => {
                Decision::WouldSuspendActor { party, actor, rule }
            }
            _ => enforced,
        }
    }

    fn decide_with<'a>(&'a self, facts: &Facts<'a>, with_dry_run: bool) -> Decision<'a> {
        let allowlist = self.mode == PolicyMode::Allowlist;
        if allowlist && self.allow_for(facts.key_host).is_none() {
            return Decision::NotAllowed {
                party: Party::KeyHost,
                host: facts.key_host,
            };
        }
        let key_rule = self.lookup(facts.key_host, with_dry_run);
        if let Some(rule) = key_rule.filter(|r| r.severity == Severity::Suspend) {
            return Decision::Reject {
                party: Party::KeyHost,
                host: facts.key_host,
                rule,
            };
        }
        if let Some(actor) = facts.actor_host {
            if allowlist && self.allow_for(actor).is_none() {
                return Decision::NotAllowed {
                    party: Party::ActorHost,
                    host: actor,
                };
            }
        }
        let actor_rule = match facts.actor_host {
            Some(actor) if actor == facts.key_host => key_rule,
            Some(actor) => self.lookup(actor, with_dry_run),
            None => None,
        };
        if let (Some(rule), Some(actor)) = (actor_rule, facts.actor_host) {
            if rule.severity == Severity::Suspend {
                return Decision::Reject {
                    party: Party::ActorHost,
                    host: actor,
                    rule,
                };
            }
        }
        if let Some(stop) = self.actor_decision(facts, with_dry_run) {
            return stop;
        }
        if facts.activity_type == Some("Flag") {
            let reporter_rule = if facts.actor_host.is_some() {
                actor_rule
            } else {
                key_rule
            };
            if let Some(rule) = reporter_rule.filter(|r| r.reject_reports) {
                return Decision::Drop { rule };
            }
        }
        let rule = match (key_rule, actor_rule) {
            (Some(k), Some(a)) if a.is_harsher_than(k) => Some(a),
            (Some(k), _) => Some(k),
            (None, a) => a,
        };
        Decision::Forward { rule }
    }

    /// Step 5 of `decide`: the activity's actor, then its object's author.
    fn actor_decision<'a>(&'a self, facts: &Facts<'a>, with_dry_run: bool) -> Option<Decision<'a>> {
        let any = self.actors.len() > 0 || (with_dry_run && self.dry_run_actors.len() > 0);
        if !any {
            return None;
        }
        let find = |uri: &str| {
            self.actors.find(uri).or_else(|| {
                with_dry_run
                    .then(|| self.dry_run_actors.find(uri))
                    .flatten()
            })
        };
        [
            (ActorParty::Actor, facts.actor),
            (ActorParty::AttributedTo, facts.attributed_to),
        ]
        .into_iter()
        .find_map(|(party, uri)| {
            let uri = uri?;
            find(uri).map(|rule| Decision::ActorSuspended {
                party,
                actor: uri,
                rule,
            })
        })
    }
}
