//! Identity and sessions: who is tracked, and which visit an event belongs to.
//!
//! Pure: the caller passes the time and a way to mint ids, so the browser package shares it.

use std::sync::Arc;
use std::time::Duration;

pub use crate::defaults::DEFAULT_SESSION_TIMEOUT;

/// The identity attached to events: a stable anonymous id, an optional user id, and a session
/// that is renewed after a period of inactivity.
#[derive(Debug, Clone)]
pub struct Identity {
    anonymous_id: Arc<str>,
    user_id: Option<Arc<str>>,
    session_id: Option<Arc<str>>,
    last_activity_ms: u64,
    session_timeout_ms: u64,
}

/// The ids to put on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    /// Stable device or installation id.
    pub anonymous_id: Arc<str>,
    /// Signed-in user, if any.
    pub user_id: Option<Arc<str>>,
    /// Current session.
    pub session_id: Arc<str>,
}

impl Identity {
    /// A new identity; no session starts until the first event.
    pub fn new(anonymous_id: impl Into<Arc<str>>, session_timeout: Duration) -> Self {
        Identity {
            anonymous_id: anonymous_id.into(),
            user_id: None,
            session_id: None,
            last_activity_ms: 0,
            session_timeout_ms: crate::policy::duration_ms(session_timeout),
        }
    }

    /// Continues a session kept from before (the browser package keeps it in storage, shared
    /// by the tabs): it stays open if `last_activity_ms` is within the timeout of the next event.
    pub fn resume(&mut self, session_id: impl Into<Arc<str>>, last_activity_ms: u64) {
        self.session_id = Some(session_id.into());
        self.last_activity_ms = last_activity_ms;
    }

    /// When the last event was tracked (Unix ms), and the open session, if any.
    pub fn session(&self) -> Option<(&str, u64)> {
        self.session_id
            .as_deref()
            .map(|id| (id, self.last_activity_ms))
    }

    /// The ids for an event tracked at `now_ms`; starts a new session (with an id from
    /// `new_session_id`) when none is open or the last event is older than the timeout.
    pub fn touch(&mut self, now_ms: u64, new_session_id: impl FnOnce() -> String) -> EventIdentity {
        let expired = now_ms.saturating_sub(self.last_activity_ms) >= self.session_timeout_ms;
        let session_id = match &self.session_id {
            Some(id) if !expired => id.clone(),
            _ => {
                let id: Arc<str> = new_session_id().into();
                self.session_id = Some(id.clone());
                id
            }
        };
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        EventIdentity {
            anonymous_id: self.anonymous_id.clone(),
            user_id: self.user_id.clone(),
            session_id,
        }
    }

    /// Sets (or clears) the signed-in user.
    pub fn set_user_id(&mut self, user_id: Option<String>) {
        self.user_id = user_id.map(Into::into);
    }

    /// Forgets the user: a new anonymous id, no user id, and a new session on the next event
    /// (call on sign-out).
    pub fn reset(&mut self, anonymous_id: impl Into<Arc<str>>) {
        self.anonymous_id = anonymous_id.into();
        self.user_id = None;
        self.session_id = None;
    }

    /// The current anonymous id.
    pub fn anonymous_id(&self) -> &str {
        &self.anonymous_id
    }

    /// The current user id.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_renew_after_inactivity() {
        let mut id = Identity::new("anon", Duration::from_secs(60));
        let mut n = 0;
        let mut mint = || {
            n += 1;
            format!("s{n}")
        };
        let steps: &[(u64, &str)] = &[
            (1_000, "s1"),   // first event opens a session
            (30_000, "s1"),  // active
            (89_999, "s1"),  // 59.999 s after the last event
            (150_000, "s2"), // 60.001 s idle: new session
            (150_001, "s2"),
            (100_000, "s2"), // a clock step back does not end the session
        ];
        for &(now, expected) in steps {
            assert_eq!(&*id.touch(now, &mut mint).session_id, expected, "at {now}");
        }
    }

    #[test]
    fn a_resumed_session_continues_until_the_timeout() {
        let mut id = Identity::new("anon", Duration::from_secs(60));
        assert_eq!(id.session(), None);
        id.resume("kept", 10_000);
        assert_eq!(id.session(), Some(("kept", 10_000)));
        assert_eq!(&*id.touch(69_999, || "new".into()).session_id, "kept");
        assert_eq!(&*id.touch(130_000, || "new".into()).session_id, "new");
    }

    #[test]
    fn user_and_reset() {
        let mut id = Identity::new("anon-1", Duration::from_secs(60));
        let first = id.touch(0, || "s1".into());
        assert_eq!(first.user_id, None);
        id.set_user_id(Some("u-42".into()));
        let e = id.touch(1, || "never".into());
        assert_eq!(e.user_id.as_deref(), Some("u-42"));
        assert_eq!(&*e.session_id, "s1");
        id.reset("anon-2");
        let e = id.touch(2, || "s2".into());
        assert_eq!(&*e.anonymous_id, "anon-2");
        assert_eq!(e.user_id, None);
        assert_eq!(&*e.session_id, "s2");
    }
}
