//! Everything the library logs during a test, captured as text.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Runs `test` on a fresh current-thread runtime with a `tracing` subscriber at `level` that
/// writes (without colours) into a buffer, and returns what was logged. The publisher task
/// runs on that runtime, so its logs are captured too; they are only as complete as the
/// test's own shutdown or flush makes them.
pub fn with_captured_logs<F: Future<Output = ()>>(
    level: tracing::Level,
    test: impl FnOnce() -> F,
) -> String {
    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(test());
    drop(runtime);
    let bytes = captured.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}
