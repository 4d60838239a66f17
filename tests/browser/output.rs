//! What a child process prints, kept for failure messages: a thread reads a pipe line by line
//! until the child closes it, keeps the last lines, and hands over the first line that starts
//! with a marker (the DevTools address, the listening address).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, mpsc};

/// Lines kept per pipe.
const KEPT_LINES: usize = 200;

/// The last lines a child printed on one pipe.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    name: &'static str,
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Output {
    /// Reads `pipe` on a thread until EOF (the child exited or was killed), so the child
    /// never blocks on a full pipe; with `watch = Some((marker, found))`, sends the first line
    /// starting with `marker` to `found`.
    pub(crate) fn collect(
        name: &'static str,
        pipe: impl Read + Send + 'static,
        watch: Option<(&'static str, mpsc::Sender<String>)>,
    ) -> Output {
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut watch = watch;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if watch
                    .as_ref()
                    .is_some_and(|(marker, _)| line.starts_with(marker))
                {
                    if let Some((_, found)) = watch.take() {
                        let _ = found.send(line.clone());
                    }
                }
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        Output { name, lines }
    }

    /// The kept lines, each prefixed with the pipe's name.
    pub(crate) fn tail(&self) -> String {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines
            .iter()
            .map(|line| format!("[{}] {line}\n", self.name))
            .collect()
    }
}
