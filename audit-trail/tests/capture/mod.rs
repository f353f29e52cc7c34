//! The canary test's log capture: a TRACE-level subscriber writing every line into
//! memory, so a test can assert that no secret reached the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helper: a panic is a failed test.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything logged since [`Capture::install`].
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// The process-wide TRACE-level, plain-text subscriber writing here, installed by the
    /// first call. A crate's tests share one binary, so a canary test also reads the logs
    /// of the tests running beside it; it looks only for its own canary values.
    pub fn install() -> Self {
        static GLOBAL: OnceLock<Capture> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let capture = Self::default();
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(capture.clone())
                    .with_max_level(tracing::Level::TRACE)
                    .with_ansi(false)
                    .finish();
                tracing::subscriber::set_global_default(subscriber).unwrap();
                capture
            })
            .clone()
    }

    /// The captured text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
