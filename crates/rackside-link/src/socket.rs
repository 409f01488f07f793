//! The link over a Unix socket, for a BMC and a client in separate processes.
//!
//! Each socket connection is one device. Frames travel as a u16 big-endian length and the
//! encoded [`Frame`]; the BMC side replaces the device id with the connection's own, so a
//! device cannot speak for another.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::frame::MAX_FRAME_SIZE;
use crate::memory::FramePipe;
use crate::{Error, Frame};

/// Time the BMC side waits for the next frame before it closes a connection. It is longer
/// than the link's default inactivity timeout of 120 s, so only a connection that the link
/// itself would already have dropped is cut.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);

/// Connects to a BMC's link socket and returns the device's pipe end.
///
/// # Errors
///
/// [`Error::Io`] when the socket cannot be reached.
pub async fn connect(path: &Path) -> Result<FramePipe, Error> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| Error::Io {
            what: format!(
                "connecting to the link socket {} (is `rackside bmc --link-socket` running?)",
                path.display()
            ),
            source,
        })?;
    Ok(bridge(stream, None))
}

/// Bridges an accepted or connected stream to a pipe end. With `device`, every frame read
/// from the stream is stamped with that device id, and frames written back carry the id the
/// device itself used, and a connection silent for [`IDLE_TIMEOUT`] is closed. Spawns two
/// tasks.
pub fn bridge(stream: UnixStream, device: Option<u32>) -> FramePipe {
    let (mut reader, mut writer) = stream.into_split();
    let claimed = Arc::new(AtomicU32::new(0));
    let claimed_by_reader = claimed.clone();
    let (to_pipe, pipe_rx) = mpsc::channel::<Frame>(64);
    let (pipe_tx, mut from_pipe) = mpsc::channel::<Frame>(64);

    tokio::spawn(async move {
        loop {
            let read = read_frame(&mut reader);
            let result = if device.is_some() {
                match tokio::time::timeout(IDLE_TIMEOUT, read).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(?device, "link socket idle; closing it");
                        return;
                    }
                }
            } else {
                read.await
            };
            match result {
                Ok(Some(mut frame)) => {
                    if let Some(device) = device {
                        claimed_by_reader.store(frame.device, Ordering::Relaxed);
                        frame.device = device;
                    }
                    if to_pipe.send(frame).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "link socket read ended");
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(mut frame) = from_pipe.recv().await {
            if device.is_some() {
                frame.device = claimed.load(Ordering::Relaxed);
            }
            let bytes = frame.encode();
            let length = u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes();
            if writer.write_all(&length).await.is_err() || writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });

    FramePipe {
        tx: pipe_tx,
        rx: pipe_rx,
    }
}

async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Frame>, Error> {
    let mut length = [0u8; 2];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                what: "reading the link socket".into(),
                source,
            })
        }
    }
    let length = usize::from(u16::from_be_bytes(length));
    if length > MAX_FRAME_SIZE {
        return Err(Error::segment(format!(
            "frame of {length} bytes exceeds {MAX_FRAME_SIZE}"
        )));
    }
    let mut bytes = vec![0u8; length];
    reader
        .read_exact(&mut bytes)
        .await
        .map_err(|source| Error::Io {
            what: "reading the link socket".into(),
            source,
        })?;
    Frame::decode(&bytes).map(Some)
}
