//! Accounts and sessions: password checks in constant time, session tokens stored only as
//! SHA-256 digests, a per-user session limit and idle expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{Role, Secret, UserAccount};
use crate::error::BmcError;

/// One account served in the accounts collection: a configured account or one created
/// through the API.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The `Id` of its `ManagerAccount` resource: `1`, `2`, ... in creation order.
    pub(crate) id: u32,
    pub(crate) account: UserAccount,
    /// A disabled account cannot log in.
    pub(crate) enabled: bool,
}

/// The accounts served in the accounts collection, plus accounts that clients defined by
/// patching the account resources of a mockup.
#[derive(Debug, Clone)]
pub(crate) struct Accounts {
    slots: Vec<Slot>,
    next_id: u32,
    /// Accounts defined through PATCH, by the URI of their `ManagerAccount` resource.
    patched: BTreeMap<String, UserAccount>,
    /// Passwords set through PATCH, kept while the rest of the account is incomplete.
    patched_passwords: BTreeMap<String, Secret>,
}

impl Accounts {
    /// Builds the account list; the first user is an administrator.
    pub(crate) fn new(
        first: Option<&(String, Secret)>,
        extra: &[UserAccount],
    ) -> Result<Self, BmcError> {
        let (name, password) = first.ok_or(BmcError::NoUser)?;
        let mut accounts = vec![UserAccount {
            name: name.clone(),
            password: password.clone(),
            role: Role::Administrator,
        }];
        accounts.extend(extra.iter().cloned());
        for (index, account) in accounts.iter().enumerate() {
            let invalid = |reason: &str| BmcError::InvalidAccount {
                user: account.name.clone(),
                reason: reason.to_owned(),
            };
            if account.name.trim().is_empty() || account.name.chars().any(char::is_control) {
                return Err(invalid(
                    "the user name is empty or contains control characters",
                ));
            }
            if account.password.expose().is_empty() {
                return Err(invalid("the password is empty; set a password"));
            }
            if accounts
                .iter()
                .skip(index + 1)
                .any(|other| other.name == account.name)
            {
                return Err(invalid("the user name is configured twice"));
            }
        }
        let slots: Vec<Slot> = accounts
            .into_iter()
            .zip(1..)
            .map(|(account, id)| Slot {
                id,
                account,
                enabled: true,
            })
            .collect();
        let next_id = u32::try_from(slots.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        Ok(Self {
            slots,
            next_id,
            patched: BTreeMap::new(),
            patched_passwords: BTreeMap::new(),
        })
    }

    /// Sets or removes the account defined by the `ManagerAccount` resource at `path`.
    pub(crate) fn set_patched(&mut self, path: &str, account: Option<UserAccount>) {
        match account {
            Some(account) => self.patched.insert(path.to_owned(), account),
            None => self.patched.remove(path),
        };
    }

    /// Stores the password set on the `ManagerAccount` resource at `path`.
    pub(crate) fn set_patched_password(&mut self, path: &str, password: Secret) {
        self.patched_passwords.insert(path.to_owned(), password);
    }

    /// The password last set on the `ManagerAccount` resource at `path`.
    pub(crate) fn patched_password(&self, path: &str) -> Option<Secret> {
        self.patched_passwords.get(path).cloned()
    }

    /// Checks a user name and password; returns the account's role when both match and the
    /// account is enabled.
    ///
    /// Every password is compared, through SHA-256 digests of equal length, so the time taken
    /// does not depend on which user matched or on the password length.
    pub(crate) fn verify(&self, user: &str, password: &str) -> Option<Role> {
        let given = Sha256::digest(password.as_bytes());
        let mut found = None;
        let served = self.slots.iter().map(|s| (&s.account, s.enabled));
        let patched = self.patched.values().map(|a| (a, true));
        for (account, enabled) in served.chain(patched) {
            let stored = Sha256::digest(account.password.expose().as_bytes());
            let password_ok: bool = stored.ct_eq(&given).into();
            if account.name == user && password_ok && enabled {
                found = Some(account.role);
            }
        }
        found
    }

    /// Adds an account and returns its `Id`. The caller has checked that the name is free.
    pub(crate) fn create(&mut self, account: UserAccount, enabled: bool) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        self.slots.push(Slot {
            id,
            account,
            enabled,
        });
        id
    }

    /// Removes the account with `Id` `id`.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Slot> {
        let index = self.slots.iter().position(|s| s.id == id)?;
        Some(self.slots.remove(index))
    }

    /// Returns the account with `Id` `id`.
    pub(crate) fn get(&self, id: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// Returns the account with `Id` `id` for a change.
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    /// Checks whether a served account other than `except` has the user name `name`.
    pub(crate) fn name_taken(&self, name: &str, except: Option<u32>) -> bool {
        self.slots
            .iter()
            .any(|s| s.account.name == name && Some(s.id) != except)
    }

    /// Counts the enabled administrators other than the account with `Id` `except`.
    pub(crate) fn other_enabled_administrators(&self, except: u32) -> usize {
        self.slots
            .iter()
            .filter(|s| s.id != except && s.enabled && s.account.role == Role::Administrator)
            .count()
    }

    /// Returns every served account, in `Id` order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }
}

/// One open session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) origin: String,
    pub(crate) created: String,
    last_used: Instant,
    token_digest: [u8; 32],
}

/// The open sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: BTreeMap<String, Session>,
    next_id: u64,
}

/// Result of a successful login: the session and its token.
pub(crate) struct NewSession {
    pub(crate) session: Session,
    pub(crate) token: Zeroizing<String>,
}

impl Sessions {
    /// Opens a session unless `user` already has `limit` of them.
    pub(crate) fn open(
        &mut self,
        user: &str,
        role: Role,
        origin: &str,
        limit: usize,
    ) -> Option<NewSession> {
        if self.by_id.values().filter(|s| s.user == user).count() >= limit {
            return None;
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(raw.as_mut());
        let token = Zeroizing::new(hex::encode(raw.as_ref()));
        self.next_id += 1;
        let session = Session {
            id: self.next_id.to_string(),
            user: user.to_owned(),
            role,
            origin: origin.to_owned(),
            created: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false),
            last_used: Instant::now(),
            token_digest: digest(&token),
        };
        self.by_id.insert(session.id.clone(), session.clone());
        Some(NewSession { session, token })
    }

    /// Finds the session of `token` and marks it used.
    pub(crate) fn touch(&mut self, token: &str) -> Option<Session> {
        let wanted = digest(token);
        let session = self
            .by_id
            .values_mut()
            .find(|s| bool::from(s.token_digest.ct_eq(&wanted)))?;
        session.last_used = Instant::now();
        Some(session.clone())
    }

    /// Deletes sessions unused for longer than `idle`; returns the deleted ones.
    pub(crate) fn expire(&mut self, idle: Duration, now: Instant) -> Vec<Session> {
        let expired: Vec<String> = self
            .by_id
            .values()
            .filter(|s| now.saturating_duration_since(s.last_used) > idle)
            .map(|s| s.id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| self.by_id.remove(id))
            .collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Session> {
        self.by_id.remove(id)
    }

    /// Closes every session of `user`; returns the closed ones.
    pub(crate) fn remove_user(&mut self, user: &str) -> Vec<Session> {
        let ids: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.user == user)
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.by_id.remove(id)).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Session> {
        self.by_id.values()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let extra = [UserAccount {
            name: "viewer".into(),
            password: Secret::new("view-pass"),
            role: Role::ReadOnly,
        }];
        Accounts::new(Some(&("root".into(), Secret::new("calvin-pass"))), &extra).unwrap()
    }

    #[test]
    fn missing_first_user_is_rejected() {
        assert!(matches!(Accounts::new(None, &[]), Err(BmcError::NoUser)));
    }

    #[test]
    fn verify_accepts_right_password_only() {
        let accounts = accounts();
        assert_eq!(
            accounts.verify("root", "calvin-pass"),
            Some(Role::Administrator)
        );
        assert_eq!(accounts.verify("viewer", "view-pass"), Some(Role::ReadOnly));
        assert_eq!(accounts.verify("root", "view-pass"), None);
        assert_eq!(accounts.verify("nobody", "calvin-pass"), None);
    }

    #[test]
    fn disabled_or_removed_account_cannot_log_in() {
        let mut accounts = accounts();
        let id = accounts.create(
            UserAccount {
                name: "new".into(),
                password: Secret::new("new-password-1"),
                role: Role::Operator,
            },
            true,
        );
        assert_eq!(
            accounts.verify("new", "new-password-1"),
            Some(Role::Operator)
        );
        accounts.get_mut(id).unwrap().enabled = false;
        assert_eq!(accounts.verify("new", "new-password-1"), None);
        accounts.get_mut(id).unwrap().enabled = true;
        assert!(accounts.remove(id).is_some());
        assert_eq!(accounts.verify("new", "new-password-1"), None);
        assert!(accounts.name_taken("root", None));
        assert!(!accounts.name_taken("root", Some(1)));
    }

    #[test]
    fn session_limit_is_per_user() {
        let mut sessions = Sessions::default();
        assert!(sessions.open("root", Role::Administrator, "a", 1).is_some());
        assert!(sessions.open("root", Role::Administrator, "a", 1).is_none());
        assert!(sessions.open("viewer", Role::ReadOnly, "a", 1).is_some());
    }

    #[test]
    fn token_finds_its_session_and_idle_session_expires() {
        let mut sessions = Sessions::default();
        let new = sessions.open("root", Role::Administrator, "a", 8).unwrap();
        assert_eq!(sessions.touch(&new.token).unwrap().id, new.session.id);
        assert!(sessions.touch("wrong").is_none());
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(sessions.expire(Duration::from_secs(60), later).len(), 1);
        assert!(sessions.touch(&new.token).is_none());
    }
}
