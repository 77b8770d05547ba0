//! Helpers shared by the end-to-end tests (each test file is a `[[test]]` target of the
//! `fewshot` package, so `CARGO_BIN_EXE_fewshot` is the release or debug binary under test).
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

/// The `../shared` folder beside the checkout (data, references), or `FEWSHOT_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("FEWSHOT_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `fewshot` command with a clean plugin environment.
pub fn fewshot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fewshot"));
    cmd.env_remove("FEWSHOT_PLUGIN_PATH");
    cmd
}

/// Runs a command and returns its output, with stdout and stderr as text.
pub fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("failed to start fewshot");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A fresh empty temporary directory unique to this test process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fewshot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create temp dir");
    dir
}
