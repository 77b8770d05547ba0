//! Standard output: the one pipe-safe writer every command prints through.

use std::io::{ErrorKind, Write};

/// Writes `text` to standard output. A reader that went away (`fewshot ... | head`) is not an
/// error: the rest of the output is simply dropped.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
