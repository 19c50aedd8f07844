//! How a service stops: one signal every task of it waits on, and the rule that a
//! loop meant to run until told to stop (deciding, executing) which ends on its own
//! takes the whole process down with an error, so its supervisor restarts it
//! rather than it serving HTTP while nothing is done.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One stop signal for every task of a service; each waits on its own
/// [`StopSignal::stopped`]. Stopping before a task starts waiting still stops it.
#[derive(Debug, Clone)]
pub struct StopSignal {
    tx: watch::Sender<bool>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal { tx: watch::Sender::new(false) }
    }
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Resolves once [`StopSignal::stop`] is called (at once if it was).
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }

    /// Whether the signal was given (for a loop that checks between steps).
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    /// Tells every task to stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// A loop that should have run until told to stop ended on its own.
#[derive(Debug, thiserror::Error)]
#[error("the {name} stopped unexpectedly ({why}); exiting so it is restarted")]
pub struct WorkerDied {
    /// Which loop.
    pub name: &'static str,
    /// How it ended (a panic's message, or that it returned).
    pub why: String,
}

/// Waits for `shutdown`, or for `worker` to end first, which is a fault:
/// then [`WorkerDied`] names it. Either way `stop` is given before returning.
pub async fn until_shutdown<T>(
    shutdown: impl Future<Output = ()>,
    worker: &mut JoinHandle<T>,
    name: &'static str,
    stop: &StopSignal,
) -> Result<(), WorkerDied> {
    let died = tokio::select! {
        _ = shutdown => None,
        ended = &mut *worker => Some(ended),
    };
    stop.stop();
    match died {
        None => Ok(()),
        Some(ended) => {
            let why = ended.err().map(|e| e.to_string()).unwrap_or_else(|| "it returned".into());
            Err(WorkerDied { name, why })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_given_before_a_task_waits_still_stops_it() {
        let stop = StopSignal::new();
        let late = stop.clone();
        stop.stop();
        assert!(late.is_stopped());
        tokio::time::timeout(Duration::from_secs(5), late.stopped()).await.expect("resolves at once");
    }

    #[tokio::test]
    async fn a_worker_that_ends_on_its_own_is_an_error_naming_it_and_stops_the_rest() {
        let stop = StopSignal::new();
        let mut worker = tokio::spawn(async {});
        let e = until_shutdown(std::future::pending(), &mut worker, "deciding subscription", &stop).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the deciding subscription stopped unexpectedly (it returned); exiting so it is restarted"
        );
        assert!(stop.is_stopped(), "the other tasks are told to stop");

        let stop = StopSignal::new();
        let mut worker = tokio::spawn(std::future::pending::<()>());
        until_shutdown(async {}, &mut worker, "executing subscription", &stop).await.unwrap();
        assert!(stop.is_stopped());
    }
}
