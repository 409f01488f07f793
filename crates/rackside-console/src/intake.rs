//! Event intake: the ways events reach the console, and their handling once they arrive.
//!
//! Each BMC has one [`Intake`], chosen from what its EventService offers: a push subscription
//! to the console's listener, else the Server-Sent Events stream, else polling of its logs.
//! Every intake hands parsed events to the [`Sink`], which keeps those below the alert
//! severity in the event log and stores, de-duplicates and forwards the rest as alerts.

use std::sync::Arc;

use serde_json::Value;

use crate::error::ConsoleError;
use crate::forward::RelayLink;
use crate::store::{NewAlert, Severity, Store};

/// The way a BMC's events reach the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// The BMC posts events to the console's listener (Redfish `EventDestination`).
    Push,
    /// The console reads the BMC's Server-Sent Events stream (`ServerSentEventUri`).
    Sse,
    /// The console reads new entries of the BMC's logs at each poll.
    LogPoll,
}

impl Intake {
    /// Parses `push`, `sse` or `log-poll`.
    ///
    /// # Errors
    /// A message naming the value and the accepted ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "push" => Ok(Self::Push),
            "sse" => Ok(Self::Sse),
            "log-poll" => Ok(Self::LogPoll),
            other => Err(format!(
                "invalid intake {:?}: use push, sse or log-poll",
                other.chars().take(32).collect::<String>()
            )),
        }
    }

    /// Returns the name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Sse => "sse",
            Self::LogPoll => "log-poll",
        }
    }

    /// Chooses the intake from a BMC's EventService resource: push when the service is
    /// enabled and has a subscriptions collection, else SSE when it names a
    /// `ServerSentEventUri`, else log polling. `None` (no EventService) gives log polling.
    ///
    /// NOTE: EventService advertises neither the destination schemes nor the protocols it
    /// delivers with, so a BMC that cannot push to the console's HTTPS listener is found out
    /// only when it rejects the subscription.
    pub fn choose(event_service: Option<&Value>) -> Self {
        let Some(service) = event_service else {
            return Self::LogPoll;
        };
        let enabled = service.get("ServiceEnabled").and_then(Value::as_bool) != Some(false);
        let has_subscriptions = service
            .get("Subscriptions")
            .and_then(|s| s.get("@odata.id"))
            .is_some();
        if enabled && has_subscriptions {
            return Self::Push;
        }
        if enabled
            && service
                .get("ServerSentEventUri")
                .and_then(Value::as_str)
                .is_some_and(|uri| uri.starts_with('/'))
        {
            return Self::Sse;
        }
        Self::LogPoll
    }
}

/// The destination of parsed events: the store, and the relay for new alerts.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The store.
    pub store: Arc<Store>,
    /// The relay link, when forwarding is configured.
    pub relay: Option<Arc<RelayLink>>,
    /// Events of this severity and above become alerts; the rest go to the event log.
    pub min_severity: Severity,
}

impl Sink {
    /// Stores each event: below [`Sink::min_severity`] in the event log only, otherwise as
    /// an alert unless it is a duplicate. New alerts are forwarded to the relay in the
    /// background. Returns the number of new alerts.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure; events before the failing one are kept.
    pub fn accept(&self, events: Vec<NewAlert>, now: i64) -> Result<usize, ConsoleError> {
        let mut fresh = Vec::new();
        for event in events {
            if event.severity < self.min_severity {
                if self.store.insert_event(&event, now)? {
                    tracing::debug!(bmc = %event.bmc, message_id = %event.message_id, severity = ?event.severity, "event logged below the alert severity");
                }
                continue;
            }
            if let Some(stored) = self.store.insert_alert(&event, now)? {
                tracing::info!(bmc = %stored.bmc, alert = stored.id, severity = ?stored.severity, message_id = %stored.message_id, "alert stored");
                fresh.push(stored);
            }
        }
        let count = fresh.len();
        if let (Some(relay), false) = (self.relay.clone(), fresh.is_empty()) {
            let store = self.store.clone();
            tokio::spawn(async move {
                for alert in fresh {
                    relay.forward(&store, &alert).await;
                }
            });
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscriptions_collection_gives_push() {
        let service = json!({"ServiceEnabled": true, "ServerSentEventUri": "/sse",
            "Subscriptions": {"@odata.id": "/redfish/v1/EventService/Subscriptions"}});
        assert_eq!(Intake::choose(Some(&service)), Intake::Push);
    }

    #[test]
    fn service_without_subscriptions_falls_back() {
        let sse = json!({"ServiceEnabled": true, "ServerSentEventUri": "/redfish/v1/SSE"});
        assert_eq!(Intake::choose(Some(&sse)), Intake::Sse);
        let disabled = json!({"ServiceEnabled": false, "ServerSentEventUri": "/redfish/v1/SSE",
            "Subscriptions": {"@odata.id": "/s"}});
        assert_eq!(Intake::choose(Some(&disabled)), Intake::LogPoll);
        assert_eq!(Intake::choose(None), Intake::LogPoll);
    }

    #[test]
    fn intake_names_round_trip() {
        for intake in [Intake::Push, Intake::Sse, Intake::LogPoll] {
            assert_eq!(Intake::parse(intake.as_str()), Ok(intake));
        }
        assert!(Intake::parse("smtp")
            .unwrap_err()
            .contains("push, sse or log-poll"));
    }

    #[tokio::test]
    async fn low_severity_event_is_not_alerted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let sink = Sink {
            store: store.clone(),
            relay: None,
            min_severity: Severity::Warning,
        };
        let event = |key: &str, severity| NewAlert {
            bmc: "bmc-1".into(),
            dedup_key: key.into(),
            event_id: None,
            message_id: "IDRAC.2.9.USR0030".into(),
            severity,
            message: "User root logged in".into(),
            origin: None,
            timestamp: None,
        };
        let fresh = sink
            .accept(
                vec![
                    event("login", Severity::OK),
                    event("fan", Severity::Critical),
                ],
                1,
            )
            .unwrap();
        assert_eq!(fresh, 1);
        assert_eq!(store.unread_count().unwrap(), 1);
        assert_eq!(store.events(Some("bmc-1"), 10).unwrap().len(), 1);
    }
}
