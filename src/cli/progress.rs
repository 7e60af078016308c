//! Progress on the command line: a bar (indicatif) when stderr is a
//! terminal, a log line per step otherwise (a job's log).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Progress;

pub struct Shown {
    tty: bool,
    phase: Mutex<Option<Phase>>,
}

struct Phase {
    what: &'static str,
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Shown {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            phase: Mutex::new(None),
        }
    }
}

impl Progress for Shown {
    fn begin(&self, what: &'static str, total: u64) {
        let bar = self.tty.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:<22} [{bar:30}] {pos}/{len} rows  {per_sec:>10}  ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("#>-"),
            );
            bar.set_message(what);
            bar
        });
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = Some(Phase {
            what,
            total,
            started: Instant::now(),
            bar,
        });
    }

    fn at(&self, done: u64) {
        let phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = phase.as_ref() else { return };
        match &p.bar {
            Some(bar) => bar.set_position(done),
            None => {
                let secs = p.started.elapsed().as_secs_f64().max(1e-3);
                let rate = done as f64 / secs;
                let eta = if rate > 0.0 {
                    p.total.saturating_sub(done) as f64 / rate
                } else {
                    0.0
                };
                tracing::info!(
                    what = p.what,
                    done,
                    total = p.total,
                    rate = rate.round(),
                    eta_secs = eta.round(),
                    "progress"
                );
            }
        }
    }

    fn end(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Phase { bar: Some(bar), .. }) = phase.take() {
            bar.finish();
        }
    }
}
