//! The async driver of the BMC side: one task owns the [`LinkServer`], takes frames from every
//! attached pipe, runs the clock, hands HTTP requests to a handler and events to a sink.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::memory::FramePipe;
use crate::{Error, Event, Frame, LinkServer};

/// Handles HTTP/1.1 requests from the link, typically by passing them to the Redfish service.
pub trait RequestHandler: Send + Sync + 'static {
    /// Returns the complete HTTP/1.1 response to one complete request.
    fn handle(&self, request: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
}

/// Receives the link's events, for the lifecycle log and to persist the failed-login count.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event. Runs on the driver task, so it must not block for long.
    fn record(&self, event: &Event);
}

/// A snapshot of the BMC side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Whether the link is on.
    pub active: bool,
    /// Whether failed logins locked it.
    pub locked: bool,
    /// The failed-login count.
    pub failed_logins: u32,
}

enum Command {
    Button,
    Attach(FramePipe),
    Status(oneshot::Sender<Status>),
}

/// A handle to the running BMC side.
#[derive(Clone, Debug)]
pub struct LinkService {
    commands: mpsc::Sender<Command>,
}

impl LinkService {
    /// Starts the driver task on the current tokio runtime.
    pub fn spawn<H: RequestHandler, S: EventSink>(
        server: LinkServer,
        handler: Arc<H>,
        sink: Arc<S>,
    ) -> Self {
        let (commands, receiver) = mpsc::channel(16);
        tokio::spawn(run(server, handler, sink, receiver));
        LinkService { commands }
    }

    /// Presses the activation button.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the driver task has stopped.
    pub async fn press_button(&self) -> Result<(), Error> {
        self.commands
            .send(Command::Button)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Attaches one device connection.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the driver task has stopped.
    pub async fn attach(&self, pipe: FramePipe) -> Result<(), Error> {
        self.commands
            .send(Command::Attach(pipe))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Returns the link's state.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the driver task has stopped.
    pub async fn status(&self) -> Result<Status, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)
    }
}

/// Accepts device connections on a bound Unix socket and attaches each one, with its own
/// device id. A failed accept, such as running out of file descriptors, is logged and retried
/// after [`ACCEPT_RETRY_DELAY`], so the loop only ends when the driver task stops.
///
/// # Errors
///
/// [`Error::Closed`] when the driver task stopped.
pub async fn serve_socket(listener: UnixListener, service: LinkService) -> Result<(), Error> {
    let mut next_device = 1000u32;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting on the link socket failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        next_device = next_device.wrapping_add(1);
        let pipe = crate::socket::bridge(stream, Some(next_device));
        service.attach(pipe).await?;
    }
}

/// Pause after a failed accept, so a full file descriptor table does not spin the loop.
pub const ACCEPT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

async fn run<H: RequestHandler, S: EventSink>(
    mut server: LinkServer,
    handler: Arc<H>,
    sink: Arc<S>,
    mut commands: mpsc::Receiver<Command>,
) {
    // `None` marks a connection that closed.
    let (frames_tx, mut frames) = mpsc::channel::<(usize, Option<Frame>)>(256);
    let (responses_tx, mut responses) = mpsc::channel::<Vec<u8>>(4);
    // Keyed by an index that is never reused, so a closed connection can be removed.
    let mut connections: HashMap<usize, mpsc::Sender<Frame>> = HashMap::new();
    let mut next_index = 0usize;
    let mut routes: HashMap<u32, usize> = HashMap::new();

    loop {
        let deadline = server.next_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Button) => server.press_button(Instant::now()),
                Some(Command::Status(reply)) => {
                    let _ = reply.send(Status {
                        active: server.is_active(),
                        locked: server.is_locked(),
                        failed_logins: server.failed_logins(),
                    });
                }
                Some(Command::Attach(pipe)) => {
                    let index = next_index;
                    next_index = next_index.wrapping_add(1);
                    connections.insert(index, pipe.tx);
                    let frames_tx = frames_tx.clone();
                    let mut rx = pipe.rx;
                    tokio::spawn(async move {
                        while let Some(frame) = rx.recv().await {
                            if frames_tx.send((index, Some(frame))).await.is_err() {
                                return;
                            }
                        }
                        let _ = frames_tx.send((index, None)).await;
                    });
                }
            },
            Some((index, frame)) = frames.recv() => match frame {
                Some(frame) => {
                    routes.insert(frame.device, index);
                    server.receive_frame(&frame, Instant::now());
                }
                None => {
                    // Dropping the sender ends the connection's writer task, which closes
                    // the socket.
                    connections.remove(&index);
                    let gone: Vec<u32> = routes
                        .iter()
                        .filter(|(_, route)| **route == index)
                        .map(|(device, _)| *device)
                        .collect();
                    for device in gone {
                        routes.remove(&device);
                        server.drop_device(device);
                    }
                }
            },
            Some(response) = responses.recv() => {
                if let Err(error) = server.send_response(response) {
                    tracing::debug!(%error, "link response dropped");
                }
            }
            () = sleep_until(deadline) => server.handle_timeout(Instant::now()),
        }

        while let Some(event) = server.poll_event() {
            sink.record(&event);
        }
        while let Some(request) = server.poll_request() {
            let handler = handler.clone();
            let responses_tx = responses_tx.clone();
            tokio::spawn(async move {
                let response = handler.handle(request).await;
                let _ = responses_tx.send(response).await;
            });
        }
        while let Some(frame) = server.poll_frame() {
            let Some(connection) = routes
                .get(&frame.device)
                .and_then(|index| connections.get(index))
            else {
                continue;
            };
            if connection.send(frame).await.is_err() {
                tracing::debug!("link device connection closed");
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
