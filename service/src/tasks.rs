//! Background tasks that stop with their service: every task a service starts goes through
//! [`Tasks::spawn`], watches the same cancellation token, and the service waits for all of
//! them before it reports that it has stopped. Nothing runs on after `run` returns.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One service's background tasks and the signal that stops them.
#[derive(Debug, Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    /// Tasks stopped by `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Tasks {
        Tasks { tracker: TaskTracker::new(), shutdown }
    }

    /// The signal every task watches to know it must stop.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts `task`, which must end soon after [`Tasks::shutdown`] is cancelled.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Starts `task` and drops it when shutdown is asked for (for tasks with nothing to
    /// finish, such as a periodic report).
    pub fn spawn_until_shutdown<F>(&self, task: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move { shutdown.run_until_cancelled(task).await })
    }

    /// Counts `future` among the tasks while it runs somewhere else (e.g. a connection
    /// that axum drives after an upgrade).
    pub fn track_future<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        self.tracker.track_future(future)
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Asks every task to stop and waits up to `grace` for them; returns how many were
    /// still running then (and logs them), 0 when all stopped.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_ok() {
            return 0;
        }
        let left = self.tracker.len();
        tracing::warn!(tasks = left, "background tasks still running after the shutdown grace period");
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_task_to_finish_its_own_shutdown() {
        let tasks = Tasks::new(CancellationToken::new());
        let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
        for id in 0..3 {
            let shutdown = tasks.shutdown().clone();
            let finished_tx = finished_tx.clone();
            tasks.spawn(async move {
                shutdown.cancelled().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = finished_tx.send(id);
            });
        }
        let looping = tasks.spawn_until_shutdown(std::future::pending::<()>());
        assert_eq!(tasks.running(), 4);
        assert_eq!(tasks.stop(Duration::from_secs(5)).await, 0);
        drop(finished_tx);
        let mut ids = Vec::new();
        while let Some(id) = finished.recv().await {
            ids.push(id);
        }
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(looping.await.ok(), Some(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_shutdown_is_reported_after_the_grace_period() {
        let tasks = Tasks::new(CancellationToken::new());
        tasks.spawn(std::future::pending::<()>());
        assert_eq!(tasks.stop(Duration::from_secs(1)).await, 1);
    }
}
