//! Test support: a server on a runtime of its own, so a test can kill it as a crash would
//! (every task and socket gone at once, nothing handed over) while the test's own runtime
//! goes on. Small and without dependencies of its own, so it is always built rather than
//! behind a feature that would build every service twice.

use std::future::Future;

/// A server started by [`OwnRuntime::start`]; dropping it kills it.
#[derive(Debug)]
pub struct OwnRuntime<T> {
    /// What the start gave back (an address, a URL…).
    pub handle: T,
    runtime: Option<tokio::runtime::Runtime>,
}

impl<T: Send + 'static> OwnRuntime<T> {
    /// Runs `start` on a new runtime with `threads` workers, from a plain thread (a
    /// runtime cannot be entered from the test's own); `start` binds the server and gives
    /// back its handle and the future that serves, which keeps running there.
    pub fn start<F, Fut, Serve>(threads: usize, start: F) -> OwnRuntime<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = (T, Serve)>,
        Serve: Future + Send + 'static,
        Serve::Output: Send + 'static,
    {
        let started = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("a runtime for the server: {e}"));
            let (handle, serve) = runtime.block_on(start());
            runtime.spawn(serve);
            OwnRuntime { handle, runtime: Some(runtime) }
        })
        .join();
        started.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl<T> OwnRuntime<T> {
    /// Stops the server as a crash would.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Whether [`OwnRuntime::kill`] has run.
    pub fn is_killed(&self) -> bool {
        self.runtime.is_none()
    }
}

impl<T> Drop for OwnRuntime<T> {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_server_stops_answering_at_once() {
        let mut server = OwnRuntime::start(1, || async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
            let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
            let serve = async move {
                loop {
                    let _ = listener.accept().await;
                }
            };
            (address, serve)
        });
        assert!(std::net::TcpStream::connect(server.handle).is_ok());
        server.kill();
        assert!(server.is_killed());
        // The runtime's threads drop their tasks in the background: wait for it.
        let refused = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(server.handle).is_err()
        });
        assert!(refused, "the listener died with its runtime");
    }
}
