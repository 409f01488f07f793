//! A blocking client for the agent, for callers without an async runtime at
//! hand (the CLI's synchronous store). It speaks the same frames as
//! [`super::Client`].

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use super::{unexpected, Request, Response, MAX_FRAME};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::vault::{CacheEntry, ServerRecord, Unlock, VaultStatus};

/// How long one request may take. An unlock runs Argon2id, calibrated to
/// about half a second, so this leaves a wide margin on a busy machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking connection to a running agent.
#[derive(Debug)]
pub struct BlockingClient {
    path: PathBuf,
    stream: UnixStream,
}

impl BlockingClient {
    /// Connects to the agent at `path`, after checking that this user owns
    /// the socket, so that no request (a password, say) goes to another
    /// user's listener.
    ///
    /// # Errors
    /// `Agent` when nothing listens there or the socket belongs to another user.
    pub fn connect(path: &Path) -> Result<BlockingClient> {
        let agent_err = |message: String| Error::Agent {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| agent_err(format!("no agent is running ({e}): run `rackside unlock`")))?;
        if meta.uid() != rustix::process::getuid().as_raw() {
            return Err(agent_err(format!(
                "the socket belongs to user id {}, not to you: remove it or set another path",
                meta.uid()
            )));
        }
        let stream = UnixStream::connect(path)
            .map_err(|e| agent_err(format!("no agent is running ({e}): run `rackside unlock`")))?;
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
            .map_err(|e| agent_err(format!("cannot set timeouts: {e}")))?;
        Ok(BlockingClient {
            path: path.to_path_buf(),
            stream,
        })
    }

    /// Sends one request and reads the response.
    ///
    /// # Errors
    /// `Agent` when the connection fails or the response does not parse.
    pub fn request(&mut self, request: &Request) -> Result<Response> {
        let agent_err = |message: String| Error::Agent {
            path: self.path.clone(),
            message,
        };
        let body = Zeroizing::new(
            serde_json::to_vec(request).map_err(|e| agent_err(format!("cannot encode: {e}")))?,
        );
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| (*len as usize) <= MAX_FRAME)
            .ok_or_else(|| agent_err("request above the frame limit".into()))?;
        let mut frame = Zeroizing::new(Vec::with_capacity(body.len() + 4));
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| agent_err(format!("cannot send: {e}")))?;

        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| agent_err(format!("cannot read the answer: {e}")))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(agent_err(format!(
                "answer of {len} bytes is above the limit of {MAX_FRAME}"
            )));
        }
        let mut answer = Zeroizing::new(vec![0u8; len]);
        self.stream
            .read_exact(&mut answer)
            .map_err(|e| agent_err(format!("cannot read the answer: {e}")))?;
        serde_json::from_slice(&answer).map_err(|e| agent_err(format!("malformed answer: {e}")))
    }

    /// Unlocks the vault in the agent.
    ///
    /// # Errors
    /// `AgentRefused` with the vault's reason (wrong password and so on).
    pub fn unlock(&mut self, unlock: Unlock) -> Result<()> {
        self.expect_done(&Request::Unlock {
            password: unlock.password,
            quick: unlock.quick,
        })
    }

    /// Locks the vault at once.
    ///
    /// # Errors
    /// `Agent` when the connection fails.
    pub fn lock(&mut self) -> Result<()> {
        self.expect_done(&Request::Lock)
    }

    /// Returns the vault status (`None` when locked) and the seconds left
    /// before the auto-lock.
    ///
    /// # Errors
    /// `Agent` when the connection fails.
    pub fn status(&mut self) -> Result<(Option<VaultStatus>, u64)> {
        match self.request(&Request::Status)? {
            Response::Status {
                vault,
                idle_left_secs,
            } => Ok((vault, idle_left_secs)),
            other => Err(unexpected(other)),
        }
    }

    /// Lists every server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn servers(&mut self) -> Result<Vec<ServerRecord>> {
        match self.request(&Request::Servers)? {
            Response::Servers { servers } => Ok(servers),
            other => Err(unexpected(other)),
        }
    }

    /// Reads one server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn server(&mut self, name: &str) -> Result<Option<ServerRecord>> {
        match self.request(&Request::Server { name: name.into() })? {
            Response::Server { server } => Ok(server),
            other => Err(unexpected(other)),
        }
    }

    /// Adds or replaces a server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn put_server(&mut self, server: ServerRecord) -> Result<()> {
        self.expect_done(&Request::PutServer { server })
    }

    /// Removes a server with its credential and cache.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn remove_server(&mut self, name: &str) -> Result<()> {
        self.expect_done(&Request::RemoveServer { name: name.into() })
    }

    /// Reads a server's password.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn credential(&mut self, server: &str) -> Result<Option<Secret>> {
        match self.request(&Request::Credential {
            server: server.into(),
        })? {
            Response::Credential { password } => Ok(password),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a server's password.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn put_credential(&mut self, server: &str, password: Secret) -> Result<()> {
        self.expect_done(&Request::PutCredential {
            server: server.into(),
            password,
        })
    }

    /// Reads a cached result.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn cache(&mut self, kind: &str, server: &str) -> Result<Option<CacheEntry>> {
        match self.request(&Request::Cache {
            kind: kind.into(),
            server: server.into(),
        })? {
            Response::Cache { entry } => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a cached result.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub fn put_cache(&mut self, entry: CacheEntry) -> Result<()> {
        self.expect_done(&Request::PutCache { entry })
    }

    fn expect_done(&mut self, request: &Request) -> Result<()> {
        match self.request(request)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
