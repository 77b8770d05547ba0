//! Helpers shared by the end-to-end tests (each test file is a `[[test]]` target of the
//! `fewshot` package, so `CARGO_BIN_EXE_fewshot` is the release or debug binary under test).
#![allow(dead_code)]

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
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

/// How long one `fewshot` invocation of a test may run before it is killed (a hang fails the
/// test instead of stalling CI). `FEWSHOT_TEST_TIMEOUT` (seconds) overrides it.
pub fn command_timeout() -> Duration {
    let secs = std::env::var("FEWSHOT_TEST_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    Duration::from_secs(secs)
}

/// Runs a command under [`command_timeout`] and returns its output, with stdout and stderr as
/// text. A command still running at the deadline is killed and the test fails, naming it.
pub fn run(cmd: &mut Command) -> (Output, String, String) {
    run_within(cmd, command_timeout())
}

/// [`run`] with an explicit deadline.
pub fn run_within(cmd: &mut Command, limit: Duration) -> (Output, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start fewshot");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout_pipe = child.stdout.take().expect("stdout piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for fewshot") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} did not finish within {} s (hung?); stderr so far:\n{stderr}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    };
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

/// CIFAR-10's classes in label order (also the alphabetical order of ImageFolder class folders).
pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Copies the first `train` and `test` images of every class of ../shared's CIFAR-10 JPEG tree.
pub fn jpeg_subset(root: &Path, train: usize, test: usize) -> PathBuf {
    let source = shared_dir().join("data/cifar10-jpeg");
    for (part, count) in [("train", train), ("test", test)] {
        for class in CLASSES {
            let mut files: Vec<PathBuf> = fs::read_dir(source.join(part).join(class))
                .unwrap_or_else(|e| panic!("{}: {e}", source.display()))
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let to = root.join(part).join(class);
            fs::create_dir_all(&to).unwrap();
            for file in &files[..count] {
                fs::copy(file, to.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    root.to_path_buf()
}

