//! The in-memory delivery queue: bounded, never written to disk, each alert dropped (and its
//! ciphertext zeroized) once it is delivered, expired, failed or out of attempts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::apikeys::ConsoleName;
use crate::providers::{Outcome, Providers, Push};
use crate::registry::{Registration, RegistrationToken, Registry};

/// Most dead registrations kept per console until the console collects them; older ones
/// are dropped first.
const MAX_GONE_PER_CONSOLE: usize = 10_000;

/// Bounded exponential back-off for 429, 5xx and network failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// Maximum wait between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Returns the wait after failed attempt number `attempt` (1-based), honouring the
    /// provider's `Retry-After` when it sent one. The wait is at least `base_delay` unless
    /// `max_delay` is smaller.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        retry_after
            .map_or(doubled, |after| after.max(self.base_delay))
            .min(self.max_delay)
    }
}

/// Counters of what the queue did, for `/v1/stats` and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pushes accepted into the queue.
    pub accepted: AtomicU64,
    /// Pushes the provider accepted.
    pub delivered: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Pushes dropped because the registration is dead.
    pub gone: AtomicU64,
    /// Pushes dropped after a permanent failure or the last attempt.
    pub failed: AtomicU64,
    /// Pushes dropped because their time to live ran out.
    pub expired: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Pushes accepted into the queue.
    pub accepted: u64,
    /// Pushes the provider accepted.
    pub delivered: u64,
    /// Attempts that will be retried.
    pub retried: u64,
    /// Pushes dropped because the registration is dead.
    pub gone: u64,
    /// Pushes dropped after a permanent failure or the last attempt.
    pub failed: u64,
    /// Pushes dropped because their time to live ran out.
    pub expired: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            gone: self.gone.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
        }
    }
}

/// A dead registration waiting for its console to collect it.
#[derive(Debug, Clone)]
pub struct GoneEntry {
    /// The token the console used.
    pub token: RegistrationToken,
    /// The device id it belonged to.
    pub device: String,
}

/// Dead registrations per console, until the console collects them.
#[derive(Debug, Default)]
pub struct GoneList {
    entries: Mutex<HashMap<ConsoleName, Vec<GoneEntry>>>,
}

impl GoneList {
    fn record(&self, console: ConsoleName, entry: GoneEntry) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = entries.entry(console).or_default();
        if list.len() >= MAX_GONE_PER_CONSOLE {
            list.remove(0);
        }
        list.push(entry);
    }

    /// Returns whether `token` is a dead registration of `console` not yet collected.
    pub fn contains(&self, console: &ConsoleName, token: &RegistrationToken) -> bool {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(console)
            .is_some_and(|list| list.iter().any(|e| &e.token == token))
    }

    /// Removes and returns the console's dead registrations.
    pub fn take(&self, console: &ConsoleName) -> Vec<GoneEntry> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(console).unwrap_or_default()
    }
}

/// One alert in the queue.
#[derive(Debug)]
pub struct Job {
    /// The registration token the console pushed to.
    pub token: RegistrationToken,
    /// The registration behind it.
    pub registration: Registration,
    /// The encrypted alert.
    pub push: Push,
    /// Attempts made so far.
    pub attempts: u32,
    /// After this instant the alert is dropped undelivered.
    pub deadline: Instant,
}

/// Reason a push could not join the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueError {
    /// The queue contains its maximum number of alerts.
    Full,
    /// The delivery task has stopped.
    Closed,
}

/// The sending half of the queue plus the shared state its delivery tasks use.
#[derive(Debug, Clone)]
pub struct Queue {
    sender: mpsc::Sender<Job>,
    stop: Arc<watch::Sender<bool>>,
    /// Queue counters.
    pub stats: Arc<Stats>,
    /// Dead registrations per console.
    pub gone: Arc<GoneList>,
}

impl Queue {
    /// Starts the delivery task: at most `capacity` alerts wait, at most `concurrency` are in
    /// flight at once.
    pub fn start(
        capacity: usize,
        concurrency: usize,
        retry: RetryPolicy,
        providers: Arc<Providers>,
        registry: Arc<Registry>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let (stop, stopped) = watch::channel(false);
        let queue = Self {
            sender,
            stop: Arc::new(stop),
            stats: Arc::new(Stats::default()),
            gone: Arc::new(GoneList::default()),
        };
        let worker = Worker {
            queue: queue.clone(),
            retry,
            providers,
            registry,
            in_flight: Arc::new(Semaphore::new(concurrency.max(1))),
            stopped,
        };
        tokio::spawn(worker.run(receiver));
        queue
    }

    /// Stops delivery: queued alerts and pending retries are dropped, attempts in flight
    /// finish. Alerts are not saved anywhere, by design.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Adds a job without waiting.
    ///
    /// # Errors
    /// [`EnqueueError::Full`] when the queue is at capacity, [`EnqueueError::Closed`] after
    /// shutdown.
    pub fn enqueue(&self, job: Job) -> Result<(), EnqueueError> {
        self.sender.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EnqueueError::Full,
            mpsc::error::TrySendError::Closed(_) => EnqueueError::Closed,
        })
    }
}

#[derive(Clone)]
struct Worker {
    queue: Queue,
    retry: RetryPolicy,
    providers: Arc<Providers>,
    registry: Arc<Registry>,
    in_flight: Arc<Semaphore>,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::Receiver<Job>) {
        let mut stopped = self.stopped.clone();
        loop {
            let job = tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => break,
                job = receiver.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                break;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                worker.attempt(job).await;
                drop(permit);
            });
        }
        receiver.close();
        let mut dropped = 0u64;
        while receiver.try_recv().is_ok() {
            dropped += 1;
        }
        tracing::debug!(dropped, "delivery stopped; queued alerts dropped");
    }

    async fn attempt(&self, mut job: Job) {
        let stats = &self.queue.stats;
        let id = job.token.id();
        let provider = job.registration.target.provider();
        if *self.stopped.borrow() {
            return;
        }
        if Instant::now() >= job.deadline {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(registration = %id, provider, "alert expired undelivered");
            return;
        }

        job.attempts += 1;
        match self
            .providers
            .deliver(&job.registration.target, &job.push)
            .await
        {
            Outcome::Delivered => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(registration = %id, provider, attempts = job.attempts, "alert delivered");
            }
            Outcome::Gone => {
                stats.gone.fetch_add(1, Ordering::Relaxed);
                tracing::info!(registration = %id, provider, console = %job.registration.console,
                    "provider reports the device gone; registration removed");
                if let Err(error) = self.registry.remove(&job.token) {
                    tracing::warn!(registration = %id, %error, "failed to save the registration table");
                }
                self.queue.gone.record(
                    job.registration.console.clone(),
                    GoneEntry {
                        token: job.token,
                        device: job.registration.device,
                    },
                );
            }
            Outcome::Failed(reason) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(registration = %id, provider, %reason, "alert dropped");
            }
            Outcome::Retry { after, reason } => self.schedule_retry(job, after, &reason),
        }
    }

    fn schedule_retry(&self, job: Job, after: Option<Duration>, reason: &str) {
        let stats = &self.queue.stats;
        let id = job.token.id();
        let delay = self.retry.delay(job.attempts, after);
        if job.attempts >= self.retry.max_attempts || Instant::now() + delay >= job.deadline {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(registration = %id, attempts = job.attempts, %reason,
                "alert dropped after its last attempt");
            return;
        }
        stats.retried.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(registration = %id, attempts = job.attempts, delay_ms = delay.as_millis() as u64,
            %reason, "delivery will be retried");
        let worker = self.clone();
        tokio::spawn(async move {
            let mut stopped = worker.stopped.clone();
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(delay) => {}
            }
            // Retries skip the queue so that a full queue cannot starve them, and they still
            // count against the in-flight limit.
            let Ok(_permit) = worker.in_flight.clone().acquire_owned().await else {
                return;
            };
            worker.attempt(job).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(1, None), Duration::from_millis(100));
        assert_eq!(policy.delay(2, None), Duration::from_millis(200));
        assert_eq!(policy.delay(3, None), Duration::from_millis(400));
        assert_eq!(policy.delay(9, None), Duration::from_secs(1));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
        assert_eq!(policy.delay(u32::MAX, None), Duration::from_secs(1));
    }
}
