//! One way to run an HTTP service in Stratus: bind first (so the caller knows its address
//! and can build URLs into its state), then serve an axum router on a thread of its own
//! with its own runtime, until [`Service::stop`], a drop, Ctrl-C or SIGTERM. `stratus
//! serve`, `stratus proxy` and `stratus import server` all run this way, and so do the
//! tests that start them in-process.

/// The answers every Stratus service gives alike: OAuth JSON that is never cached.
pub mod answer;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use axum::Router;

/// A running service. Dropping it stops it and waits for its thread.
pub struct Service {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Binds `host:port` (0 picks a free port) for [`Service::start`].
pub fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let listener = TcpListener::bind((host, port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl Service {
    /// Serves the router that `app` makes on a new thread named `name`. `app` runs inside
    /// the service's runtime, so it may spawn the service's background tasks. Returns once
    /// connections are accepted.
    pub fn start(
        name: &str,
        listener: TcpListener,
        app: impl FnOnce() -> Router + Send + 'static,
    ) -> io::Result<Service> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let worker = format!("{name}-worker");
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name(worker)
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let app = app();
                    let _ = ready_tx.send(Ok(()));
                    // Without TCP_NODELAY a response's last segment can wait for the
                    // client's delayed ACK: tens of milliseconds per small answer on a
                    // kept-alive connection.
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            tokio::select! {
                                _ = rx => {}
                                _ = shutdown_signal() => tracing::info!("shutting down"),
                            }
                        })
                        .await
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Service {
                addr,
                shutdown: Some(tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other(
                "the service thread ended before it was ready",
            )),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the service stops (Ctrl-C / SIGTERM, or an error).
    pub fn wait(mut self) -> io::Result<()> {
        self.join()
    }

    /// Stops the service and waits for it.
    pub fn stop(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the service thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn starts_answers_and_stops() {
        let listener = super::bind("127.0.0.1", 0).expect("bind");
        let service = super::Service::start("test-service", listener, || {
            axum::Router::new().route("/", axum::routing::get(|| async { "up" }))
        })
        .expect("start");
        let addr = service.addr();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        use std::io::{Read, Write};
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(answer.ends_with("up"), "{answer}");
        service.stop().expect("stop");
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
