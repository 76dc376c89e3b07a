//! Console sessions: random ids in memory with an expiry. A restart signs
//! everyone out, which is the point of keeping them in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a sign-in lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The session cookie's name.
pub const COOKIE: &str = "fieldhook_console";

/// One signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    csrf: String,
    expires: Instant,
}

impl Session {
    /// The token every form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.inner.csrf
    }

    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.inner.csrf.as_bytes()))
    }
}

/// The live sessions, by the SHA-256 of their id: a lookup's timing says
/// nothing about the ids, and the map holds none of them.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    lifetime: Duration,
}

impl Sessions {
    /// No sessions; each new one lasts `lifetime`.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// Starts a session; returns the id for the cookie.
    pub fn create(&self) -> String {
        let id = random_hex();
        let session = Session {
            inner: Arc::new(Inner {
                csrf: random_hex(),
                expires: Instant::now() + self.lifetime,
            }),
        };
        let mut map = self.lock();
        let now = Instant::now();
        // Expired sessions go when someone signs in: the map stays as small
        // as the number of operators.
        map.retain(|_, s| s.inner.expires > now);
        map.insert(digest(&id), session);
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let key = digest(id);
        match map.get(&key) {
            Some(s) if s.inner.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with this id.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// 32 random bytes, hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id in the request's cookies.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a new session: not readable by scripts, never sent
/// with a request another site starts.
pub fn set_cookie(id: &str, lifetime: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        lifetime.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_expires_or_is_removed() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.create();
        assert_eq!(id.len(), 64, "32 random bytes, hex");
        let s = sessions.get(&id).expect("live");
        assert!(s.csrf_matches(s.csrf()));
        assert!(!s.csrf_matches("forged"));
        assert!(sessions.get("someone-else").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());

        let short = Sessions::new(Duration::ZERO);
        let id = short.create();
        assert!(short.get(&id).is_none(), "expired at once");
    }

    #[test]
    fn the_session_id_is_found_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; fieldhook_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h), Some("abc"));
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }
}
