//! Secrets and credentials.

use std::fmt;

use zeroize::Zeroizing;

/// A password or session token: wiped from memory on drop, printed as `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// Returns the secret text. Each caller must keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A BMC account's user name and password.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The account name.
    pub username: String,
    /// The account password.
    pub password: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let creds = Credentials {
            username: "root".into(),
            password: Secret::new("calvin"),
        };
        let printed = format!("{creds:?}");
        assert!(!printed.contains("calvin"), "{printed}");
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }
}
