//! Simulated long-running tasks. An action returns 202 with the task URI in `Location`, and the
//! task completes after the configured delay. iDRAC also keeps a job resource under its
//! manager, which outlives the task under [`crate::Fault::VanishingTaskMonitor`].

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

/// Collection of task resources.
pub(crate) const TASKS_PATH: &str = "/redfish/v1/TaskService/Tasks";

/// One task and its job.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) task_path: String,
    pub(crate) job_path: Option<String>,
    started: String,
    completes_at: Instant,
    /// Whether the task URI returns 404 once the task completed.
    vanishes: bool,
}

impl Task {
    /// Starts a task numbered `number` that completes after `duration`.
    pub(crate) fn start(
        number: usize,
        name: &str,
        manager: Option<&str>,
        duration: Duration,
        vanishes: bool,
    ) -> Self {
        let id = format!("JID_{}", 100_000_000_000u64 + number as u64);
        Self {
            task_path: format!("{TASKS_PATH}/{id}"),
            job_path: manager.map(|m| format!("{m}/Jobs/{id}")),
            id,
            name: name.to_owned(),
            started: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false),
            completes_at: Instant::now() + duration,
            vanishes,
        }
    }

    fn completed(&self, now: Instant) -> bool {
        now >= self.completes_at
    }

    /// Builds the Task resource, or `None` when it has vanished.
    pub(crate) fn task_body(&self, now: Instant) -> Option<Value> {
        let done = self.completed(now);
        if done && self.vanishes {
            return None;
        }
        Some(json!({
            "@odata.id": self.task_path,
            "@odata.type": "#Task.v1_7_0.Task",
            "Id": self.id,
            "Name": self.name,
            "TaskState": if done { "Completed" } else { "Running" },
            "TaskStatus": "OK",
            "PercentComplete": if done { 100 } else { 50 },
            "StartTime": self.started,
            "Messages": [],
        }))
    }

    /// Builds the job resource, which stays after completion.
    pub(crate) fn job_body(&self, now: Instant) -> Option<Value> {
        let path = self.job_path.as_ref()?;
        let done = self.completed(now);
        Some(json!({
            "@odata.id": path,
            "@odata.type": "#Job.v1_2_0.Job",
            "Id": self.id,
            "Name": self.name,
            "JobState": if done { "Completed" } else { "Running" },
            "JobStatus": "OK",
            "PercentComplete": if done { 100 } else { 50 },
            "StartTime": self.started,
            "Messages": [],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanishing_task_leaves_job() {
        let task = Task::start(
            1,
            "update",
            Some("/redfish/v1/Managers/1"),
            Duration::ZERO,
            true,
        );
        let later = Instant::now() + Duration::from_millis(1);
        assert!(task.task_body(later).is_none());
        assert_eq!(task.job_body(later).unwrap()["JobState"], "Completed");
    }

    #[test]
    fn normal_task_stays_completed() {
        let task = Task::start(1, "update", None, Duration::ZERO, false);
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(task.task_body(later).unwrap()["TaskState"], "Completed");
    }
}
