//! Progress reporting that draws on a terminal and stays silent otherwise (CI logs, Bazel actions).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-count progress bar on stderr; hidden when stderr is not a terminal.
pub fn bytes(message: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// An item-count progress bar on stderr; hidden when stderr is not a terminal.
pub fn items(message: &str, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} [{bar:30}] {pos}/{len}"
    } else {
        "{msg} {pos}"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Prints a tool's one-line summary of what it wrote ("icos-ext4: wrote … (… bytes, …)") to stderr,
/// on a terminal only. Inside a Bazel action or a CI log the line would repeat what the build
/// already says, and bury the warnings that matter; a user at a terminal still sees it.
pub fn summary(line: std::fmt::Arguments<'_>) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("{line}");
    }
}
