//! The one signal that the server is stopping: streams end, workers finish what they hold.

use std::sync::Arc;

use tokio::sync::watch;

/// Tells every task that the server is stopping. Cheap to clone; every clone is the same
/// signal.
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not given yet.
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }

    /// The server is stopping.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether the server is stopping.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the server is stopping (at once if it already is).
    pub async fn wait(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives as long as `self`, so this ends only when the value is true.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_hears_the_signal_even_after_it_was_given() {
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        assert!(!waiter.is_triggered());
        let waiting = tokio::spawn(async move { waiter.wait().await });
        shutdown.trigger();
        waiting.await.unwrap();
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
