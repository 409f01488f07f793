//! Password checks for `POST /api/login`, kept off the async workers.
//!
//! Argon2id is slow on purpose, so each check runs on Tokio's blocking pool and at most
//! [`VERIFY_PERMITS`] run at once. An unknown user is checked against a dummy hash made with
//! the same parameters, so the response takes as long as for a wrong password. A client address
//! with [`MAX_FAILURES`] failed logins within [`FAILURE_WINDOW`] is rejected before any check.
//! Each attempt counts as a failure until it succeeds, so attempts queued for a permit count
//! too. Requests without a known client address, such as in-process tests, share one count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::api::User;
use crate::error::invalid;
use crate::ConsoleError;

/// Maximum number of password checks running at once.
pub const VERIFY_PERMITS: usize = 2;
/// Failed logins from one client address that are allowed within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window over which failed logins are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked before expired entries are pruned.
const TRACKED_ADDRESSES: usize = 4096;

/// The outcome of one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The user exists and the password matches.
    Verified,
    /// Unknown user or wrong password.
    Rejected,
    /// Too many failed logins from this client address.
    Limited,
}

/// Rate limit and worker pool for login password checks.
pub struct LoginGuard {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
    failures: Mutex<HashMap<Option<IpAddr>, FailureCount>>,
    dummy_verifications: AtomicU64,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct FailureCount {
    window_start: Instant,
    count: u32,
}

impl LoginGuard {
    /// Creates a guard with a dummy hash of a random password.
    ///
    /// # Errors
    /// [`ConsoleError::Invalid`] when Argon2 cannot hash, which does not happen with the
    /// default parameters.
    pub fn new() -> Result<Self, ConsoleError> {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy_hash = argon2::Argon2::default()
            .hash_password(&random, &salt)
            .map_err(|e| invalid("password", e.to_string()))?
            .to_string();
        Ok(Self {
            permits: Arc::new(Semaphore::new(VERIFY_PERMITS)),
            dummy_hash: Arc::new(dummy_hash),
            failures: Mutex::new(HashMap::new()),
            dummy_verifications: AtomicU64::new(0),
        })
    }

    /// Checks `password` for the user `name` coming from `client`, and counts a failure.
    pub async fn check(
        &self,
        users: &[User],
        client: Option<IpAddr>,
        name: &str,
        password: Zeroizing<String>,
    ) -> LoginCheck {
        // 1. A client over its limit gets no password check at all. The attempt counts as a
        // failure from here on unless it succeeds.
        if !self.admit(client) {
            return LoginCheck::Limited;
        }

        // 2. Known users are checked against their hash, unknown ones against the dummy.
        let user_hash = users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.password_hash.clone());
        let known = user_hash.is_some();
        let hash = user_hash.unwrap_or_else(|| {
            self.dummy_verifications.fetch_add(1, Ordering::Relaxed);
            self.dummy_hash.as_ref().clone()
        });
        let matches = self.verify(hash, password).await;

        // 3. A success clears the count of the address.
        if known && matches {
            self.failures_lock().remove(&client);
            LoginCheck::Verified
        } else {
            LoginCheck::Rejected
        }
    }

    /// Returns how many logins were checked against the dummy hash.
    pub fn dummy_verifications(&self) -> u64 {
        self.dummy_verifications.load(Ordering::Relaxed)
    }

    /// Runs Argon2 on the blocking pool once a permit is free.
    async fn verify(&self, hash: String, password: Zeroizing<String>) -> bool {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let task = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|hash| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
        });
        match task.await {
            Ok(matches) => matches,
            Err(error) => {
                tracing::error!(%error, "password check task failed");
                false
            }
        }
    }

    /// Counts one attempt from `client`, or returns false when it is over the limit.
    fn admit(&self, client: Option<IpAddr>) -> bool {
        let mut failures = self.failures_lock();
        if failures.len() >= TRACKED_ADDRESSES {
            failures.retain(|_, entry| entry.window_start.elapsed() < FAILURE_WINDOW);
        }
        let now = Instant::now();
        let entry = failures.entry(client).or_insert(FailureCount {
            window_start: now,
            count: 0,
        });
        if entry.window_start.elapsed() >= FAILURE_WINDOW {
            *entry = FailureCount {
                window_start: now,
                count: 0,
            };
        }
        if entry.count >= MAX_FAILURES {
            return false;
        }
        entry.count = entry.count.saturating_add(1);
        true
    }

    fn failures_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, FailureCount>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery";

    fn users() -> Vec<User> {
        vec![crate::hash_user("admin", PASSWORD).unwrap()]
    }

    fn password(text: &str) -> Zeroizing<String> {
        Zeroizing::new(text.to_owned())
    }

    #[tokio::test]
    async fn unknown_user_is_checked_against_dummy_hash() {
        let guard = LoginGuard::new().unwrap();
        let users = users();
        let unknown = guard
            .check(&users, None, "nobody", password(PASSWORD))
            .await;
        assert_eq!(unknown, LoginCheck::Rejected);
        assert_eq!(guard.dummy_verifications(), 1);

        let wrong = guard
            .check(&users, None, "admin", password("wrong password"))
            .await;
        assert_eq!(wrong, LoginCheck::Rejected);
        assert_eq!(guard.dummy_verifications(), 1);

        let right = guard.check(&users, None, "admin", password(PASSWORD)).await;
        assert_eq!(right, LoginCheck::Verified);
    }

    #[tokio::test]
    async fn failures_past_limit_are_limited_per_address() {
        let guard = LoginGuard::new().unwrap();
        let users = users();
        let attacker = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..MAX_FAILURES {
            let check = guard
                .check(&users, attacker, "admin", password("wrong"))
                .await;
            assert_eq!(check, LoginCheck::Rejected);
        }
        let limited = guard
            .check(&users, attacker, "admin", password(PASSWORD))
            .await;
        assert_eq!(limited, LoginCheck::Limited);

        let other = Some(IpAddr::from([192, 0, 2, 2]));
        let allowed = guard
            .check(&users, other, "admin", password(PASSWORD))
            .await;
        assert_eq!(allowed, LoginCheck::Verified);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openapi_answers_while_logins_run() {
        use tower::ServiceExt as _;

        let dir = tempfile::tempdir().unwrap();
        let state = crate::api::AppState {
            store: Arc::new(crate::store::Store::open(dir.path()).unwrap()),
            relay: None,
            users: Arc::new(users()),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            listener_base: "https://127.0.0.1:1/events/".into(),
            login: Arc::new(LoginGuard::new().unwrap()),
        };
        let router = crate::api::router(state);
        let login_request = || {
            axum::http::Request::post("/api/login")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    r#"{"user":"admin","password":"wrong password"}"#,
                ))
                .unwrap()
        };

        // 1. Four wrong logins in flight at once: fewer than the per-address limit, so each one
        //    runs a password check instead of an immediate 429.
        let logins: Vec<_> = (0..4)
            .map(|_| tokio::spawn(router.clone().oneshot(login_request())))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;

        // 2. Another route answers before any password check has finished. Were the checks
        //    run on the two async workers, the route could only be served once a worker had
        //    finished a check (each takes hundreds of milliseconds).
        let openapi = axum::http::Request::get("/openapi.json")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(openapi).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let finished = logins.iter().filter(|login| login.is_finished()).count();
        assert_eq!(finished, 0, "logins finished before /openapi.json answered");

        // 3. Every login then fails on its password.
        let mut statuses = Vec::new();
        for login in logins {
            statuses.push(login.await.unwrap().unwrap().status().as_u16());
        }
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    }
}
