//! Progress bars on a terminal (indicatif); nothing when piped or with `--json`.

use std::io::IsTerminal;
use std::sync::Arc;

use coffer_client::{Progress, ProgressEvent};
use indicatif::{ProgressBar, ProgressStyle};

/// A bar fed by the backup engine's progress events.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn event(&self, e: &ProgressEvent) {
        match e {
            ProgressEvent::Scanned { bytes, .. } => self.0.set_length(*bytes),
            ProgressEvent::Bytes { done, total } => {
                if *total > 0 {
                    self.0.set_length(*total);
                }
                self.0.set_position(*done);
            }
            ProgressEvent::File { path } => self.0.set_message(path.clone()),
            ProgressEvent::Warning { message } => self.0.println(format!("warning: {message}")),
            _ => {}
        }
    }
}

/// A bar handle the caller finishes when the work ends.
pub struct Handle(Option<ProgressBar>);

impl Handle {
    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A progress callback when stderr is a terminal and JSON is off.
pub fn bar(json: bool, verb: &str) -> (Option<Arc<dyn Progress>>, Handle) {
    if json || !std::io::stderr().is_terminal() {
        return (None, Handle(None));
    }
    let pb = ProgressBar::new(0);
    let style = ProgressStyle::with_template(&format!(
        "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{wide_msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    (Some(Arc::new(Bar(pb.clone()))), Handle(Some(pb)))
}
