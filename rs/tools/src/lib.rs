//! What the tools share: how an error is printed.

use std::process::ExitCode;

/// A tool's exit: success, or its error on one line (`icos-ext4: error: …`) and exit status 1.
pub fn exit_with(tool: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: cause: cause`, like anyhow's `{:#}`, but without
/// a cause whose text the line already ends with. Our error types print their `source` in their
/// own message ("cannot read X: No such file or directory (os error 2)"), and `{:#}` then
/// printed it a second time.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;
    use anyhow::Context;
    use std::io;

    /// What `#[error("cannot read {path}: {source}")]` derives with thiserror.
    #[derive(Debug)]
    struct Read {
        path: String,
        source: io::Error,
    }
    impl std::fmt::Display for Read {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read {}: {}", self.path, self.source)
        }
    }
    impl std::error::Error for Read {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once_and_context_is_kept() {
        let read = Read {
            path: "SHA256SUMS".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file"),
        };
        let e = Err::<(), _>(read)
            .context("checking a release")
            .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "checking a release: cannot read SHA256SUMS: No such file: No such file"
        );
        assert_eq!(
            error_line(&e),
            "checking a release: cannot read SHA256SUMS: No such file"
        );
        // A cause not in the message is printed, as with `{:#}`.
        let e = anyhow::Error::new(io::Error::other("disk full")).context("writing out.img");
        assert_eq!(error_line(&e), "writing out.img: disk full");
    }
}
