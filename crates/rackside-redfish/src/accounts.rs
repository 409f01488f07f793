//! BMC user accounts through `AccountService`: list, add, change password, enable or disable,
//! and change role.
//!
//! Most services create an account with a POST to the `Accounts` collection. iDRAC has a
//! fixed set of account slots instead: the POST gets 405, and an account is added by
//! patching an empty slot (one whose `UserName` is empty). [`Client::add_account`] does
//! both. Passwords are checked against the service's `MinPasswordLength` and
//! `MaxPasswordLength` before anything is sent, and never appear in logs or errors.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{request_path, retry_after, retry_delay, status_error, SERVICE_ROOT};
use crate::transport::Response;
use crate::transport::Transport;
use crate::write::WriteOutcome;
use crate::{decode, Client, Error, Secret};

/// The role ids of the Redfish standard roles, used when the service lists no roles.
pub const STANDARD_ROLES: [&str; 3] = ["Administrator", "Operator", "ReadOnly"];

/// Account and password settings read from `AccountService`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountPolicy {
    /// The `AccountService` resource.
    pub service: String,
    /// The `Accounts` collection.
    pub accounts: String,
    /// `MinPasswordLength`, when the service states it.
    pub min_password_length: Option<u64>,
    /// `MaxPasswordLength`, when the service states it.
    pub max_password_length: Option<u64>,
    /// The role ids of the `Roles` collection, or [`STANDARD_ROLES`] when it is missing.
    pub roles: Vec<String>,
}

impl AccountPolicy {
    /// Checks a new password's length against the service's limits, counting characters.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] naming the limit; the password itself is never included.
    pub fn check_password(&self, password: &Secret) -> Result<(), Error> {
        let length = password.expose().chars().count() as u64;
        let rejected = |detail: String| Error::InvalidValue {
            name: "password".into(),
            value: "[hidden]".into(),
            detail,
        };
        if let Some(min) = self.min_password_length {
            if length < min {
                return Err(rejected(format!(
                    "it has {length} characters and {} requires at least {min}; choose a longer one",
                    self.service
                )));
            }
        }
        if let Some(max) = self.max_password_length {
            if length > max {
                return Err(rejected(format!(
                    "it has {length} characters and {} accepts at most {max}; choose a shorter one",
                    self.service
                )));
            }
        }
        Ok(())
    }

    /// Returns the role id as the service spells it, matched without regard to case.
    ///
    /// # Errors
    ///
    /// [`Error::NotOffered`] listing the roles when `role` is not one of them.
    pub fn role(&self, role: &str) -> Result<String, Error> {
        self.roles
            .iter()
            .find(|known| known.eq_ignore_ascii_case(role.trim()))
            .cloned()
            .ok_or_else(|| Error::NotOffered {
                path: self.service.clone(),
                name: "RoleId".into(),
                value: role.to_owned(),
                allowed: self.roles.join(", "),
            })
    }
}

/// One user account as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The account resource.
    pub path: String,
    /// `Id`.
    pub id: String,
    /// `UserName`.
    pub user_name: String,
    /// `RoleId`.
    pub role: Option<String>,
    /// `Enabled`.
    pub enabled: Option<bool>,
    /// `Locked`.
    pub locked: Option<bool>,
}

impl Account {
    fn from_body(path: &str, body: &Value) -> Account {
        Account {
            path: path.to_owned(),
            id: decode::text(body, "Id").unwrap_or_default(),
            user_name: decode::text(body, "UserName").unwrap_or_default(),
            role: decode::text(body, "RoleId"),
            enabled: decode::boolean(body, "Enabled"),
            locked: decode::boolean(body, "Locked"),
        }
    }
}

/// The account that [`Client::add_account`] created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountCreated {
    /// The new account resource.
    pub path: String,
    /// Whether an empty fixed slot was patched because the collection rejected POST.
    pub used_slot: bool,
}

impl<T: Transport> Client<T> {
    /// Reads `AccountService`: the password length limits, the accounts collection and the
    /// role ids.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the service root links no `AccountService`; read errors.
    pub async fn account_policy(&self) -> Result<AccountPolicy, Error> {
        let service_path = self
            .root()
            .and_then(|root| decode::link(root, "AccountService"))
            .ok_or_else(|| Error::Unsupported {
                path: SERVICE_ROOT.into(),
                detail: "user accounts (the service root links no AccountService)".into(),
            })?;
        let service = self.get(&service_path).await?;
        let accounts =
            decode::link(&service.body, "Accounts").ok_or_else(|| Error::Unsupported {
                path: service.path.clone(),
                detail: "user accounts (AccountService links no Accounts collection)".into(),
            })?;
        let roles = match decode::link(&service.body, "Roles") {
            Some(roles) => self.role_ids(&roles).await,
            None => Vec::new(),
        };
        let roles = if roles.is_empty() {
            STANDARD_ROLES.map(str::to_owned).to_vec()
        } else {
            roles
        };
        Ok(AccountPolicy {
            min_password_length: decode::unsigned(&service.body, "MinPasswordLength"),
            max_password_length: decode::unsigned(&service.body, "MaxPasswordLength"),
            service: service.path,
            accounts,
            roles,
        })
    }

    /// Reads the role ids of a `Roles` collection; an unreadable collection gives none.
    async fn role_ids(&self, collection: &str) -> Vec<String> {
        match self.members(collection).await {
            Ok(roles) => roles
                .iter()
                .filter_map(|role| {
                    decode::text(&role.body, "RoleId").or_else(|| decode::text(&role.body, "Id"))
                })
                .collect(),
            Err(error) => {
                tracing::debug!(%collection, %error, "roles unreadable, using the standard roles");
                Vec::new()
            }
        }
    }

    /// Lists the accounts that have a user name; empty iDRAC slots are left out.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::account_policy`] and [`Client::members`].
    pub async fn accounts(&self) -> Result<Vec<Account>, Error> {
        let policy = self.account_policy().await?;
        Ok(self
            .all_accounts(&policy)
            .await?
            .into_iter()
            .filter(|account| !account.user_name.is_empty())
            .collect())
    }

    async fn all_accounts(&self, policy: &AccountPolicy) -> Result<Vec<Account>, Error> {
        let members = self.members(&policy.accounts).await?;
        Ok(members
            .iter()
            .map(|member| Account::from_body(&member.path, &member.body))
            .collect())
    }

    /// Finds the account with `user_name` (exact match, as BMC user names are case-sensitive).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownName`] listing the existing user names; read errors.
    pub async fn find_account(&self, user_name: &str) -> Result<Account, Error> {
        let accounts = self.accounts().await?;
        let names: Vec<String> = accounts.iter().map(|a| a.user_name.clone()).collect();
        accounts
            .into_iter()
            .find(|account| account.user_name == user_name)
            .ok_or_else(|| Error::UnknownName {
                kind: "BMC user",
                name: user_name.to_owned(),
                expected: names.join(", "),
            })
    }

    /// Adds an enabled account with a password and a role.
    ///
    /// Checks the password length and the role against [`Client::account_policy`] first.
    /// POSTs to the accounts collection, again within the retry policy while the service
    /// answers 503 or 500 SYS518. When the POST gets 405, patches the first empty slot other
    /// than slot 1, which iDRAC reserves.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a password outside the length limits or a user name that
    /// exists; [`Error::NotOffered`] for an unknown role; [`Error::Unsupported`] when POST
    /// is rejected and no empty slot exists; the mapped status error of the POST or PATCH.
    pub async fn add_account(
        &self,
        user_name: &str,
        password: &Secret,
        role: &str,
    ) -> Result<AccountCreated, Error> {
        let policy = self.account_policy().await?;
        policy.check_password(password)?;
        let role = policy.role(role)?;
        let existing = self.all_accounts(&policy).await?;
        if existing
            .iter()
            .any(|account| account.user_name == user_name)
        {
            return Err(Error::InvalidValue {
                name: "user name".into(),
                value: user_name.to_owned(),
                detail:
                    "an account with this name exists; choose another name or change that account"
                        .into(),
            });
        }
        let body = json!({
            "UserName": user_name,
            "Password": password.expose(),
            "RoleId": role,
            "Enabled": true,
        });

        let path = request_path(&policy.accounts)?;
        let payload = Bytes::from(body.to_string());
        let mut attempt = 1;
        let response = loop {
            let response = self
                .execute(Method::POST, &path, Some(payload.clone()), true)
                .await?;
            tracing::debug!(collection = %path, status = %response.status, attempt, "account POST sent");
            if !not_processed(&path, &response) || attempt >= self.retry.max_attempts.max(1) {
                break response;
            }
            let delay = retry_delay(&self.retry, attempt, retry_after(&response.headers));
            tokio::time::sleep(delay).await;
            attempt += 1;
        };
        if response.status.is_success() {
            let created = response
                .headers
                .get(http::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| request_path(location).ok())
                .or_else(|| {
                    serde_json::from_slice::<Value>(&response.body)
                        .ok()
                        .as_ref()
                        .and_then(decode::odata_id)
                })
                .unwrap_or(path);
            return Ok(AccountCreated {
                path: created,
                used_slot: false,
            });
        }
        if response.status != StatusCode::METHOD_NOT_ALLOWED {
            let error = status_error(&path, &response);
            if attempt > 1 {
                return Err(Error::RetriesExhausted {
                    path,
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            return Err(error);
        }

        let slot = existing
            .iter()
            .find(|account| account.user_name.is_empty() && account.id != "1")
            .ok_or_else(|| Error::Unsupported {
                path: path.clone(),
                detail: "another account (POST got 405 and every account slot is in use)".into(),
            })?;
        tracing::debug!(slot = %slot.path, "account POST rejected, filling an empty slot");
        self.patch(&slot.path, &body).await?;
        Ok(AccountCreated {
            path: slot.path.clone(),
            used_slot: true,
        })
    }

    /// Sets a new password on an existing account, after checking its length.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::find_account`], [`AccountPolicy::check_password`] and
    /// [`Client::patch`].
    pub async fn set_account_password(
        &self,
        user_name: &str,
        password: &Secret,
    ) -> Result<WriteOutcome, Error> {
        let policy = self.account_policy().await?;
        policy.check_password(password)?;
        let account = self.find_account(user_name).await?;
        self.patch(&account.path, &json!({ "Password": password.expose() }))
            .await
    }

    /// Enables or disables an account.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::find_account`] and [`Client::patch`].
    pub async fn set_account_enabled(
        &self,
        user_name: &str,
        enabled: bool,
    ) -> Result<WriteOutcome, Error> {
        let account = self.find_account(user_name).await?;
        self.patch(&account.path, &json!({ "Enabled": enabled }))
            .await
    }

    /// Changes an account's role to one the service lists.
    ///
    /// # Errors
    ///
    /// [`Error::NotOffered`] for an unknown role; the errors of [`Client::find_account`] and
    /// [`Client::patch`].
    pub async fn set_account_role(
        &self,
        user_name: &str,
        role: &str,
    ) -> Result<WriteOutcome, Error> {
        let policy = self.account_policy().await?;
        let role = policy.role(role)?;
        let account = self.find_account(user_name).await?;
        self.patch(&account.path, &json!({ "RoleId": role })).await
    }
}

/// Returns whether a response says the service did not process the request: 503, or
/// iDRAC's 500 with MessageId SYS518 while it reloads. Only then is a POST sent again,
/// because it cannot have created the account.
fn not_processed(path: &str, response: &Response) -> bool {
    match response.status {
        StatusCode::SERVICE_UNAVAILABLE => true,
        StatusCode::INTERNAL_SERVER_ERROR => matches!(
            status_error(path, response),
            Error::Status { message_id: Some(id), .. } if id.ends_with("SYS518")
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: Option<u64>, max: Option<u64>) -> AccountPolicy {
        AccountPolicy {
            service: "/redfish/v1/AccountService".into(),
            accounts: "/redfish/v1/AccountService/Accounts".into(),
            min_password_length: min,
            max_password_length: max,
            roles: STANDARD_ROLES.map(str::to_owned).to_vec(),
        }
    }

    #[test]
    fn short_password_is_rejected_without_echo() {
        let error = policy(Some(8), Some(20))
            .check_password(&Secret::new("abc1234"))
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("at least 8"), "{text}");
        assert!(!text.contains("abc1234"), "{text}");
    }

    #[test]
    fn long_password_is_rejected() {
        let error = policy(None, Some(10))
            .check_password(&Secret::new("a much too long password"))
            .unwrap_err();
        assert!(error.to_string().contains("at most 10"), "{error}");
    }

    #[test]
    fn password_within_limits_is_accepted() {
        assert!(policy(Some(8), Some(20))
            .check_password(&Secret::new("twelve chars"))
            .is_ok());
    }

    #[test]
    fn role_matches_without_case() {
        assert_eq!(policy(None, None).role("readonly").unwrap(), "ReadOnly");
    }

    #[test]
    fn unknown_role_lists_the_roles() {
        let error = policy(None, None).role("Root").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("Administrator, Operator, ReadOnly"), "{text}");
    }
}
