//! The fleet console (the one-to-many role): it adds BMCs under the client's trust rules,
//! subscribes to their Redfish events, stores alerts, serves them to clients over a REST API
//! and forwards each new alert to the push relay.
//!
//! NOTE: only the crate exists so far; the service itself is not built yet.
