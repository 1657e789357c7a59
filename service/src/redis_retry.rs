//! Reaching Redis, one way for every service: a failed attempt is logged and tried again
//! after a pause until it works or the service stops, so a node that starts before Redis,
//! or outlives a Redis restart, catches up by itself.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `attempt` until it succeeds (`Some`) or `shutdown` is cancelled (`None`), waiting
/// `pause` between tries; each failure is logged at warn with `what` was being tried.
pub async fn until_ready<T, E, F, Fut>(
    what: &str,
    pause: Duration,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return None,
            outcome = attempt() => outcome,
        };
        match outcome {
            Ok(value) => return Some(value),
            Err(error) => tracing::warn!(%error, "cannot {what}; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// A managed connection (it reconnects by itself once made) to the Redis at `url`,
/// retried as [`until_ready`] does.
pub async fn connection_manager(
    url: &str,
    what: &str,
    pause: Duration,
    shutdown: &CancellationToken,
) -> Option<redis::aio::ConnectionManager> {
    until_ready(what, pause, shutdown, || async { redis::Client::open(url)?.get_connection_manager().await }).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_until_one_works() {
        let tries = AtomicU32::new(0);
        let shutdown = CancellationToken::new();
        let value = until_ready("count", Duration::from_secs(1), &shutdown, || async {
            if tries.fetch_add(1, Ordering::Relaxed) < 2 { Err("not yet") } else { Ok(42) }
        })
        .await;
        assert_eq!(value, Some(42));
        assert_eq!(tries.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_retries() {
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stopper.cancel();
        });
        let value: Option<()> =
            until_ready("fail", Duration::from_secs(1), &shutdown, || async { Err::<(), _>("down") }).await;
        assert_eq!(value, None);
    }

    #[tokio::test]
    async fn an_unreachable_redis_gives_up_when_the_service_stops() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        // A closed port on loopback: refused at once.
        let manager =
            connection_manager("redis://127.0.0.1:1", "reach Redis", Duration::from_millis(10), &shutdown).await;
        assert!(manager.is_none());
    }
}
