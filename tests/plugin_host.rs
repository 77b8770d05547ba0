//! End-to-end tests of the plugin host: the example plugin libraries are built with cargo, then
//! listed, checked and loaded through the `fewshot` binary, including libraries built against
//! modified copies of the SDK (incompatible version, changed layout, older and newer SDKs).

mod common;

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

use common::{fewshot, run, temp_dir, workspace_root};

/// Where these tests build plugin libraries: `<target>/plugin-builds`, beside the test binary's
/// own profile folder. It is a target dir of its own, so the nested cargo never waits for the
/// lock of the build that runs the tests, and it persists, so later runs rebuild nothing.
fn builds_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("test binary lives in <target>/<profile>/deps");
    target.join("plugin-builds")
}

/// Builds (or finds up to date) one or more packages of the workspace rooted at `manifest`.
fn cargo_build(manifest: &Path, packages: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(builds_dir());
    for package in packages {
        cmd.args(["-p", package]);
    }
    let out = cmd.output().expect("failed to run cargo");
    assert!(
        out.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file name of the shared library of a crate named `name`.
fn library_file(name: &str) -> PathBuf {
    let stem = name.replace('-', "_");
    builds_dir()
        .join("release")
        .join(format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

/// The two example libraries, built once per test run.
struct Examples {
    activation_space: PathBuf,
    faulty: PathBuf,
}

fn examples() -> &'static Examples {
    static BUILT: OnceLock<Examples> = OnceLock::new();
    BUILT.get_or_init(|| {
        let packages = ["fewshot-example-activation-space", "fewshot-example-faulty-plugin"];
        cargo_build(&workspace_root().join("Cargo.toml"), &packages);
        Examples {
            activation_space: library_file(packages[0]),
            faulty: library_file(packages[1]),
        }
    })
}

/// Runs `fewshot` with `args` and checks the contract of every failure: status 2, one
/// `error: ` message on stderr, nothing panicked. Returns stderr.
fn fails(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "expected exit status 2\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.starts_with("error: "), "stderr must start with `error: `:\n{stderr}");
    assert_no_panic(&out);
    stderr
}

/// Runs `fewshot` and checks it succeeded; returns stdout.
fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "fewshot failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_no_panic(&out);
    stdout
}

fn assert_no_panic(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains("panicked"), "output mentions a panic:\n{text}");
        assert!(!text.contains("RUST_BACKTRACE"), "output has Rust's panic note:\n{text}");
    }
}

fn list_json(cmd: &mut Command) -> Vec<serde_json::Value> {
    let stdout = succeeds(cmd.args(["plugins", "list", "--format", "json"]));
    serde_json::from_str(&stdout).expect("plugins list --format json prints a JSON array")
}

fn find<'a>(rows: &'a [serde_json::Value], kind: &str, name: &str) -> Option<&'a serde_json::Value> {
    rows.iter().find(|r| r["kind"] == kind && r["name"] == name)
}

#[test]
fn built_ins_of_every_kind_are_listed() {
    let rows = list_json(&mut fewshot());
    for row in &rows {
        for key in ["kind", "name", "origin", "description"] {
            assert!(row[key].is_string(), "{key} missing in {row}");
        }
        assert_eq!(row["origin"], "built-in");
    }
    let builtins = [
        ("space", ["nb201", "mobilenet"].as_slice()),
        ("rule", &["enn", "total", "live"]),
        ("splitter", &["nonlin", "none", "edge-op", "flops", "params", "random"]),
        ("sampler", &["uniform", "sbs", "fair", "group-uniform"]),
    ];
    for (kind, names) in builtins {
        for name in names {
            assert!(find(&rows, kind, name).is_some(), "built-in {kind} {name} not listed: {rows:?}");
        }
    }
}

#[test]
fn example_plugins_are_listed_with_their_library_as_origin() {
    let lib = &examples().activation_space;
    let rows = list_json(fewshot().arg("--plugin").arg(lib));
    for (kind, name) in [("space", "act-chain"), ("rule", "depth"), ("splitter", "parity"), ("sampler", "round-robin")] {
        let row = find(&rows, kind, name).unwrap_or_else(|| panic!("{kind} {name} not listed: {rows:?}"));
        assert_eq!(row["origin"], lib.display().to_string());
        assert!(!row["description"].as_str().unwrap().is_empty());
    }
    assert_eq!(find(&rows, "space", "nb201").unwrap()["origin"], "built-in");

    let table = succeeds(fewshot().arg("--plugin").arg(lib).args(["plugins", "list"]));
    let header = table.lines().next().unwrap();
    let row = table.lines().find(|l| l.contains("act-chain")).unwrap();
    assert!(header.starts_with("KIND"), "{table}");
    assert_eq!(row.find(&lib.display().to_string()), header.find("ORIGIN"), "columns are aligned:\n{table}");
}

#[test]
fn show_constructs_the_plugin_with_the_given_parameters() {
    let lib = &examples().activation_space;
    let out = succeeds(fewshot().arg("--plugin").arg(lib).args(["plugins", "show", "act-chain:layers=3,activation=tanh"]));
    assert!(out.contains("architectures: 64 (3 slots)"), "{out}");
    assert!(out.contains("layer2: conv3x3, conv1x1, avgpool3x3, skip"), "{out}");
    let err = fails(fewshot().arg("--plugin").arg(lib).args(["plugins", "show", "act-chain:activation=swish"]));
    assert!(err.contains("unknown activation `swish`"), "{err}");
    let err = fails(fewshot().args(["plugins", "show", "no-such-plugin"]));
    assert!(err.contains("no plugin named `no-such-plugin`"), "{err}");
}

#[test]
fn plugin_path_folders_and_relative_paths_are_loaded() {
    let dir = temp_dir("plugin-path");
    let lib = dir.join(examples().activation_space.file_name().unwrap());
    fs::copy(&examples().activation_space, &lib).unwrap();
    fs::write(dir.join("README.txt"), "not a library; ignored").unwrap();
    let rows = list_json(fewshot().env("FEWSHOT_PLUGIN_PATH", &dir));
    assert_eq!(find(&rows, "space", "act-chain").unwrap()["origin"], lib.display().to_string());

    // A bare file name means the file in the current folder, not a search of the system's
    // library folders.
    let name = lib.file_name().unwrap();
    let rows = list_json(fewshot().current_dir(&dir).arg("--plugin").arg(name));
    assert_eq!(find(&rows, "space", "act-chain").unwrap()["origin"], name.to_string_lossy().as_ref());

    let missing = dir.join("no-such-folder");
    let err = fails(fewshot().env("FEWSHOT_PLUGIN_PATH", &missing).args(["plugins", "list"]));
    assert!(err.contains("FEWSHOT_PLUGIN_PATH") && err.contains("no-such-folder"), "{err}");
}

#[test]
fn name_clashes_name_both_origins() {
    let lib = &examples().activation_space;
    let copy = temp_dir("clash").join(lib.file_name().unwrap());
    fs::copy(lib, &copy).unwrap();
    let err = fails(fewshot().arg("--plugin").arg(lib).arg("--plugin").arg(&copy).args(["plugins", "list"]));
    assert!(err.contains("two space plugins are named `act-chain`"), "{err}");
    assert!(err.contains(&lib.display().to_string()) && err.contains(&copy.display().to_string()), "{err}");

    let err = fails(fewshot().arg("--plugin").arg(lib).arg("--plugin").arg(lib).args(["plugins", "list"]));
    assert_eq!(err.matches(&lib.display().to_string()).count(), 2, "{err}");

    let err = fails(
        fewshot()
            .env("FEWSHOT_FAULTY_MODE", "clash-with-builtin")
            .arg("--plugin")
            .arg(&examples().faulty)
            .args(["plugins", "list"]),
    );
    assert!(err.contains("two space plugins are named `nb201`: one from built-in, one from"), "{err}");
    assert!(err.contains(&examples().faulty.display().to_string()), "{err}");
}

#[test]
fn the_example_library_passes_plugins_check() {
    let lib = &examples().activation_space;
    let out = succeeds(fewshot().args(["plugins", "check"]).arg(lib));
    for heading in ["space act-chain", "rule depth", "splitter parity", "sampler round-robin"] {
        assert!(out.lines().any(|l| l == heading), "no `{heading}` section:\n{out}");
    }
    for check in [
        "text form round-trips",
        "deterministic on built-in nb201",
        "deterministic on act-chain",
        "state survives save and load",
        "plans built-in nb201",
        "assigns every sampled architecture of act-chain",
        "picks architectures of the subspaces it names on built-in nb201",
    ] {
        assert!(out.lines().any(|l| l.starts_with(&format!("  PASS  {check}"))), "`{check}` did not pass:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn plugins_check_reports_each_fault_of_the_faulty_library() {
    let lib = &examples().faulty;
    let (out, stdout, stderr) = run(fewshot().args(["plugins", "check"]).arg(lib));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_no_panic(&out);
    assert!(stderr.starts_with("error: ") && stderr.contains("checks failed"), "{stderr}");
    let failed = |section: &str, check: &str, reason: &str| {
        let body = stdout
            .split(&format!("\n{section}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section `{section}`:\n{stdout}"));
        let body = body.split("\n\n").next().unwrap();
        assert!(
            body.lines().any(|l| l.starts_with(&format!("  FAIL  {check}: ")) && l.contains(reason)),
            "`{section}` should fail `{check}` with `{reason}`:\n{body}"
        );
    };
    failed("space broken-ctor", "constructs with default parameters", "this space refuses to be built");
    failed("space panicky-ctor", "constructs with default parameters", "plugin code crashed while constructing space `panicky-ctor`: the constructor's lookup table is empty");
    failed("space panicky-slots", "slots", "plugin code crashed while space slots: the slot table was never configured");
    failed("space lossy", "text form round-trips", "which parses back as");
    failed("space lossy", "parse rejects malformed text", "parse accepts");
    failed("space bad-graph", "supernet graph", "needs a feature vector input");
    failed("rule nondeterministic", "deterministic on built-in nb201", "not deterministic");
    failed("splitter stray", "plans built-in nb201", "subspace 2");
    failed("sampler mislabel", "picks architectures of the subspaces it names on built-in nb201", "belongs to subspace");
}

#[test]
fn libraries_that_cannot_be_loaded_give_one_clear_error() {
    let dir = temp_dir("bad-libraries");

    let missing = dir.join("libmissing.so");
    let err = fails(fewshot().arg("--plugin").arg(&missing).args(["plugins", "list"]));
    assert!(err.contains("does not exist") && err.contains("libmissing.so"), "{err}");

    let text = dir.join("libtext.so");
    fs::write(&text, "this is not a shared library\n").unwrap();
    let err = fails(fewshot().arg("--plugin").arg(&text).args(["plugins", "list"]));
    assert!(err.contains("could not be opened as a shared library"), "{err}");

    let err = fails(fewshot().arg("--plugin").arg(&dir).args(["plugins", "list"]));
    assert!(err.contains("is a folder"), "{err}");

    // An interrupted copy: the system loader would map pages past the end of the file (SIGBUS).
    let truncated = dir.join("libtruncated.so");
    let whole = fs::read(&examples().activation_space).unwrap();
    fs::write(&truncated, &whole[..whole.len() / 3]).unwrap();
    let err = fails(fewshot().arg("--plugin").arg(&truncated).args(["plugins", "list"]));
    assert!(err.contains("the file is truncated"), "{err}");

    // A proc-macro crate is a shared library of another kind: it exports no fewshot root module.
    examples();
    let foreign = fs::read_dir(builds_dir().join("release/deps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libabi_stable_derive") && name.ends_with(std::env::consts::DLL_SUFFIX)
        })
        .expect("abi_stable_derive is built as a shared library");
    let err = fails(fewshot().arg("--plugin").arg(&foreign).args(["plugins", "list"]));
    assert!(err.contains("not a fewshot plugin") && err.contains("exports no fewshot root module"), "{err}");
    let err = fails(fewshot().args(["plugins", "check"]).arg(&foreign));
    assert!(err.contains("not a fewshot plugin"), "{err}");
}

#[test]
fn failing_and_panicking_plugin_code_becomes_an_error() {
    let lib = &examples().faulty;
    let show = |name: &str| fails(fewshot().arg("--plugin").arg(lib).args(["plugins", "show", name]));

    let err = show("broken-ctor");
    assert_eq!(err.trim_end(), format!("error: space `broken-ctor` ({}): this space refuses to be built", lib.display()));

    let err = show("panicky-ctor");
    assert!(err.contains("plugin code crashed while constructing space `panicky-ctor`: the constructor's lookup table is empty"), "{err}");
    assert!(err.contains("faulty-plugin/src/lib.rs"), "the panic location is kept: {err}");

    let err = show("panicky-slots");
    assert!(err.contains("space `panicky-slots`") && err.contains("the slot table was never configured"), "{err}");

    let err = fails(
        fewshot()
            .env("FEWSHOT_FAULTY_MODE", "panic-in-entries")
            .arg("--plugin")
            .arg(lib)
            .args(["plugins", "list"]),
    );
    assert!(err.contains("plugin code crashed while listing the library's plugins"), "{err}");
}

/// The SDK variants share one workspace folder each and one target dir; cargo serialises them
/// anyway, and building them one at a time keeps its output readable on failure.
static VARIANT_BUILDS: Mutex<()> = Mutex::new(());

/// Builds the example space against a modified copy of the SDK and returns the library.
///
/// The copy lives in `<plugin-builds>/variants/<name>/` as a workspace of two members:
/// `sdk-<name>` (the SDK after `edits`, each a `(file, from, to)` replacement that must apply)
/// and the example, renamed `variant-<name>`. Distinct folder and crate names keep cargo from
/// mixing up the variants' artifacts in the shared target dir. Files are only rewritten when
/// their content changes, so an unchanged variant is not rebuilt.
fn build_variant(name: &str, edits: &[(&str, &str, &str)]) -> PathBuf {
    let _one_at_a_time = VARIANT_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = write_variant(name, edits);
    cargo_build(&manifest, &[&format!("variant-{name}")]);
    library_file(&format!("variant-{name}"))
}

/// Writes the workspace of the variant `name` (see [`build_variant`]); returns its manifest.
fn write_variant(name: &str, edits: &[(&str, &str, &str)]) -> PathBuf {
    let root = workspace_root();
    let dir = builds_dir().join("variants").join(name);
    let sdk = format!("sdk-{name}");
    let crate_name = format!("variant-{name}");

    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for file in source_files(&root.join("sdk")) {
        let relative = file.strip_prefix(root.join("sdk")).unwrap();
        files.push((dir.join(&sdk).join(relative), fs::read_to_string(&file).unwrap()));
    }
    let example = root.join("examples/activation-space");
    for file in source_files(&example) {
        let relative = file.strip_prefix(&example).unwrap();
        let mut text = fs::read_to_string(&file).unwrap();
        if relative == Path::new("Cargo.toml") {
            text = replace_once(&text, "name = \"fewshot-example-activation-space\"", &format!("name = \"{crate_name}\""));
            text = replace_once(&text, "path = \"../../sdk\"", &format!("path = \"../../{sdk}\""));
        }
        files.push((dir.join("examples/activation-space").join(relative), text));
    }
    for (file, from, to) in edits {
        let target = dir.join(&sdk).join(file);
        let entry = files.iter_mut().find(|(path, _)| *path == target).unwrap_or_else(|| panic!("no SDK file {file}"));
        entry.1 = replace_once(&entry.1, from, to);
    }
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: String = manifest
        .lines()
        .filter(|l| !l.starts_with("default-members"))
        .map(|l| {
            if l.starts_with("members") {
                format!("members = [\"{sdk}\", \"examples/activation-space\"]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    files.push((dir.join("Cargo.toml"), members));
    files.push((dir.join("Cargo.lock"), fs::read_to_string(root.join("Cargo.lock")).unwrap()));
    for (path, text) in &files {
        write_if_changed(path, text);
    }
    dir.join("Cargo.toml")
}

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![dir.join("Cargo.toml")];
    let mut pending = vec![dir.join("src")];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur exactly once");
    text.replacen(from, to, 1)
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

const SDK_VERSION_LINE: &str = "version = \"0.1.0\"";

#[test]
fn a_library_built_on_another_sdk_minor_version_is_refused_naming_both() {
    let lib = build_variant("v0-2", &[("Cargo.toml", SDK_VERSION_LINE, "version = \"0.2.0\"")]);
    let err = fails(fewshot().arg("--plugin").arg(&lib).args(["plugins", "list"]));
    assert!(err.contains("built against fewshot-sdk 0.2.0"), "{err}");
    assert!(err.contains("this fewshot uses fewshot-sdk 0.1.0"), "{err}");
    assert!(err.contains("rebuild the plugin against fewshot-sdk 0.1.x"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_layout_change_is_summarised_and_detailed_only_with_verbose() {
    let lib = build_variant("layout", &[("src/plugin.rs", "    pub count: u32,", "    pub count: u64,")]);
    let err = fails(fewshot().arg("--plugin").arg(&lib).args(["plugins", "list"]));
    assert!(err.contains("(built with fewshot-sdk 0.1.0) does not match this fewshot (fewshot-sdk 0.1.0)"), "{err}");
    assert!(err.contains("`ArchMetrics.count` is `u64` in the library but `u32` here"), "{err}");
    assert!(err.contains("FfiSplitter.assign"), "the summary says how the type is reached: {err}");
    assert!(err.contains("rebuild the plugin against fewshot-sdk 0.1.0"), "{err}");
    assert!(err.lines().count() <= 2, "{err}");

    let (out, _, verbose) = run(fewshot().arg("--verbose").arg("--plugin").arg(&lib).args(["plugins", "list"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(verbose.starts_with(err.trim_end()), "the summary comes first:\n{verbose}");
    assert!(verbose.contains("Error:mismatched type") && verbose.lines().count() > 100, "full report expected");
}

#[test]
fn a_library_on_an_older_sdk_lacking_a_method_is_refused() {
    let lib = build_variant(
        "older",
        &[
            (
                "src/ffi.rs",
                "    fn default_groups(&self) -> FfiResult<RString>;\n    /// See [`SearchSpace::slots_in_series`].\n    #[sabi(last_prefix_field)]\n    fn slots_in_series(&self) -> FfiResult<bool>;",
                "    #[sabi(last_prefix_field)]\n    fn default_groups(&self) -> FfiResult<RString>;",
            ),
            (
                "src/ffi.rs",
                "    fn slots_in_series(&self) -> FfiResult<bool> {\n        call(\"space slots_in_series\", || Ok(self.0.slots_in_series()))\n    }\n",
                "",
            ),
        ],
    );
    let err = fails(fewshot().arg("--plugin").arg(&lib).args(["plugins", "list"]));
    assert!(err.contains("built against an older fewshot-sdk, which lacks methods of `FfiSearchSpace`"), "{err}");
    assert!(err.contains("rebuild the plugin against fewshot-sdk 0.1.0"), "{err}");
}

#[test]
fn a_library_on_a_newer_compatible_sdk_loads_and_passes_check() {
    let lib = build_variant(
        "v0-1-1",
        &[
            ("Cargo.toml", SDK_VERSION_LINE, "version = \"0.1.1\""),
            (
                "src/ffi.rs",
                "    fn slots_in_series(&self) -> FfiResult<bool>;\n",
                "    fn slots_in_series(&self) -> FfiResult<bool>;\n    /// Added in 0.1.1, after the last prefix field.\n    fn summary(&self) -> FfiResult<RString> {\n        FfiResult::ROk(RString::new())\n    }\n",
            ),
        ],
    );
    let rows = list_json(fewshot().arg("--plugin").arg(&lib));
    assert_eq!(find(&rows, "space", "act-chain").unwrap()["origin"], lib.display().to_string());
    let out = succeeds(fewshot().args(["plugins", "check"]).arg(&lib));
    assert!(out.contains("built with fewshot-sdk 0.1.1") && out.contains(" 0 failed"), "{out}");
}

/// The `plugins check` output of the faulty library, computed once.
fn faulty_check() -> &'static str {
    static OUTPUT: OnceLock<String> = OnceLock::new();
    OUTPUT.get_or_init(|| {
        let (out, stdout, stderr) = run(fewshot().args(["plugins", "check"]).arg(&examples().faulty));
        assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
        stdout
    })
}

/// The lines of one `plugins check` section (heading excluded).
fn section<'a>(stdout: &'a str, heading: &str) -> Vec<&'a str> {
    let body = stdout.split(&format!("\n{heading}\n")).nth(1).unwrap_or_else(|| panic!("no section `{heading}`:\n{stdout}"));
    body.split("\n\n").next().unwrap().lines().collect()
}

/// The reason of the first `FAIL` line of a section: `<check>: <why>`.
fn first_failure(stdout: &str, heading: &str) -> String {
    let lines = section(stdout, heading);
    let line = lines.iter().find(|l| l.starts_with("  FAIL  ")).unwrap_or_else(|| panic!("nothing failed in `{heading}`:\n{stdout}"));
    line.trim_start_matches("  FAIL  ").to_string()
}

/// A `fewshot` command loading the faulty library.
fn with_faulty() -> Command {
    let mut cmd = fewshot();
    cmd.arg("--plugin").arg(&examples().faulty);
    cmd
}

/// Options of a tiny NB201 training run (a second or two).
const TINY: &[&str] = &[
    "--set", "data.builtin_train=128", "--set", "data.builtin_test=64", "--valid-images", "32", "--test-images", "32",
    "--batch", "16", "--set", "eval.batch_size=16", "--population", "4", "--generations", "1", "--epochs", "1",
    "--estimator", "supernet",
];

/// A trained tiny NB201 run directory, made once.
fn tiny_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("tiny-run").join("run");
        succeeds(fewshot().args(["train", "--space", "nb201:N=1"]).args(TINY).arg("--out").arg(&dir));
        dir
    })
}

/// A copy of the tiny run's configuration and checkpoint with its space replaced by `space`.
fn run_dir_with_space(space: &str) -> PathBuf {
    let dir = temp_dir(&format!("run-with-{space}"));
    let config = fs::read_to_string(tiny_run().join("config.toml")).unwrap();
    fs::write(dir.join("config.toml"), replace_once(&config, "spec = \"nb201:N=1\"", &format!("spec = \"{space}\""))).unwrap();
    fs::copy(tiny_run().join("checkpoint.safetensors"), dir.join("checkpoint.safetensors")).unwrap();
    dir
}

#[test]
fn every_command_that_uses_a_space_refuses_one_that_fails_plugins_check_with_its_message() {
    for space in ["panicky-format", "dashed-options", "mixed-add", "false-series", "lossy", "bad-graph"] {
        let why = first_failure(faulty_check(), &format!("space {space}"));
        let expected = format!("space `{space}` ({}) fails a conformance check: {why}", examples().faulty.display());
        let err = fails(with_faulty().args(["split", "--space", space]));
        assert!(err.contains(&expected), "split on {space}: expected `{expected}` in\n{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    let why = first_failure(faulty_check(), "space panicky-format");
    let out = temp_dir("refused-run");
    let stage_commands: Vec<Vec<String>> = vec![
        ["run", "--space", "panicky-format", "--out"].map(String::from).to_vec(),
        ["train", "--space", "panicky-format", "--out"].map(String::from).to_vec(),
    ];
    for mut args in stage_commands {
        args.push(out.join(&args[0]).display().to_string());
        args.extend(TINY.iter().map(|s| s.to_string()));
        let err = fails(with_faulty().args(&args));
        assert!(err.contains(&why), "{args:?}: {err}");
        assert!(!out.join(&args[0]).join("best.json").exists() && !out.join(&args[0]).join("checkpoint.safetensors").exists());
    }
    let bad_run = run_dir_with_space("panicky-format");
    for args in [vec!["eval", "--all", "--run"], vec!["search", "--run"]] {
        let err = fails(with_faulty().args(&args).arg(&bad_run));
        assert!(err.contains(&why), "{args:?}: {err}");
    }
    assert!(!bad_run.join("best.json").exists() && !bad_run.join("search.csv").exists());
    let err = fails(with_faulty().args(["costs", "--all", "--space", "panicky-format"]));
    assert!(err.contains(&why), "{err}");
    let err = fails(with_faulty().args(["bench", "step", "--space", "panicky-format"]));
    assert!(err.contains(&why), "{err}");

    // The supernet is checked at the run's channel divisor too, naming it.
    let err = fails(with_faulty().args(["costs", "--all", "--space", "mixed-add", "--channel-divisor", "4"]));
    assert!(err.contains("at channel divisor 2"), "{err}");
}

#[test]
fn plugins_check_lists_skipped_checks_and_counts_them() {
    let stdout = faulty_check();
    let broken = section(stdout, "space broken-ctor");
    assert!(broken.iter().any(|l| l.starts_with("  FAIL  constructs with default parameters: ")), "{stdout}");
    for check in ["slots", "text form round-trips", "supernet graph", "default groups"] {
        assert!(broken.contains(&format!("  SKIP  {check}: the space was not constructed").as_str()), "{check}:\n{stdout}");
    }
    assert!(section(stdout, "space mixed-add").contains(&"  SKIP  subnet graphs: the supernet graph failed"), "{stdout}");
    assert!(section(stdout, "splitter stray").contains(&"  SKIP  assigns every sampled architecture of built-in nb201: the splitter did not plan built-in nb201"), "{stdout}");

    let count = |tag: &str| stdout.lines().filter(|l| l.starts_with(&format!("  {tag}  "))).count();
    let (passed, failed, skipped) = (count("PASS"), count("FAIL"), count("SKIP"));
    assert!(skipped > 0);
    let summary = format!("{} checks: {passed} passed, {failed} failed, {skipped} skipped", passed + failed + skipped);
    assert!(stdout.lines().any(|l| l == summary), "expected `{summary}`:\n{stdout}");
}

#[test]
fn plugins_check_tests_the_series_claim() {
    let why = first_failure(faulty_check(), "space false-series");
    assert!(why.starts_with("slots in series: the space says its slots lie in series, but in `"), "{why}");
    assert!(why.ends_with("a live path of the counting graph bypasses slot 1 `layer1`"), "{why}");
    assert!(section(faulty_check(), "space one-invalid").iter().any(|l| l.starts_with("  PASS  slots in series: yes, every live path crosses every slot in 20 sampled")));
    assert!(section(faulty_check(), "space lossy").contains(&"  PASS  slots in series: not claimed"));
}

#[test]
fn plugins_check_checks_the_parameters_given() {
    let lib = &examples().activation_space;
    let out = succeeds(fewshot().args(["plugins", "check"]).arg(lib).args(["--params", "act-chain:layers=3,activation=tanh"]));
    let lines = section(&out, "space act-chain:layers=3,activation=tanh");
    assert_eq!(lines[0], "  PASS  constructs with `layers=3,activation=tanh`", "{out}");
    assert_eq!(lines[1], "  PASS  slots: 3 slots, 64 architectures", "{out}");
    assert!(out.contains("deterministic on act-chain:layers=3,activation=tanh"), "{out}");
    assert!(!out.contains("\nspace act-chain\n"), "given parameters replace the defaults:\n{out}");

    let (output, out, err) = run(fewshot().args(["plugins", "check"]).arg(lib).args(["--params", "act-chain:activation=swish"]));
    assert_eq!(output.status.code(), Some(2), "{out}\n{err}");
    let lines = section(&out, "space act-chain:activation=swish");
    assert!(lines[0].starts_with("  FAIL  constructs with `activation=swish`: ") && lines[0].contains("unknown activation `swish`"), "{out}");
    assert!(lines[1..].iter().all(|l| l.starts_with("  SKIP  ")), "{out}");

    let err = fails(fewshot().args(["plugins", "check"]).arg(lib).args(["--params", "no-such:x=1"]));
    assert!(err.contains("has no plugin named `no-such`"), "{err}");
}

#[test]
fn sizes_by_dynamic_programming_leave_out_the_architectures_validate_rejects() {
    let split = |cmd: &mut Command| -> serde_json::Value {
        serde_json::from_str(&succeeds(cmd.args(["--format", "json"]))).expect("split --format json prints JSON")
    };
    let r = split(with_faulty().args(["split", "--space", "one-invalid"]));
    assert_eq!(r["method"], "dynamic programming");
    assert_eq!(r["exact"], true);
    assert_eq!(r["total"], 3u64.pow(13) - 1, "{r}");
    let sum: u64 = r["subspaces"].as_array().unwrap().iter().map(|s| s["size"].as_u64().unwrap()).sum();
    assert_eq!(sum, 3u64.pow(13) - 1, "{r}");
    assert!(r.get("assumes").is_none(), "every architecture was validated: {r}");

    // Too big to validate each: the plan says what it assumes.
    let r = split(fewshot().args(["split", "--space", "mobilenet"]));
    assert_eq!(r["method"], "dynamic programming");
    assert!(r["assumes"].as_str().unwrap().starts_with("every architecture is valid"), "{r}");
    let table = succeeds(fewshot().args(["split", "--space", "mobilenet"]));
    assert!(table.lines().next().unwrap().contains("sizes exact (dynamic programming), assuming every architecture is valid"), "{table}");
}

#[test]
fn a_plugin_built_with_panic_abort_does_not_compile() {
    let _one_at_a_time = VARIANT_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = write_variant("abort", &[]);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["rustc", "--release", "--lib", "-p", "variant-abort", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(builds_dir())
        .args(["--", "-C", "panic=abort"])
        .output()
        .expect("failed to run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a panic = \"abort\" plugin compiled:\n{stderr}");
    assert!(stderr.contains("a fewshot plugin cannot be built with `panic = \"abort\"`"), "{stderr}");
}

#[test]
fn show_prints_the_parameter_values_the_plugin_was_built_with() {
    let lib = &examples().activation_space;
    let out = succeeds(fewshot().arg("--plugin").arg(lib).args(["plugins", "show", "act-chain:layers=3,activation=tanh"]));
    assert!(out.contains("\n  built with:   layers=3, activation=tanh (other parameters at their defaults)\n"), "{out}");
    let out = succeeds(fewshot().args(["plugins", "show", "nb201"]));
    assert!(out.contains("\n  built with:   the defaults\n"), "{out}");
}

#[test]
fn eval_names_the_space_plugin_when_it_cannot_parse_an_architecture() {
    let err = fails(fewshot().args(["eval", "--arch", "garbage", "--run"]).arg(tiny_run()));
    assert!(err.starts_with("error: space `nb201` (built-in): "), "{err}");
    let archs = temp_dir("eval-archs").join("archs.txt");
    fs::write(&archs, "garbage\n").unwrap();
    let err = fails(fewshot().arg("eval").arg("--archs").arg(&archs).arg("--run").arg(tiny_run()));
    assert!(err.starts_with(&format!("error: {} line 1: space `nb201` (built-in): ", archs.display())), "{err}");
}

#[test]
fn rank_refuses_a_truth_table_with_non_numeric_values_as_split_does() {
    let dir = temp_dir("rank-truth");
    let truth = dir.join("truth.csv");
    fs::write(&truth, "arch,c10_test_acc\na1,90\na2,80\nunused,n/a\n").unwrap();
    let pred = dir.join("pred.csv");
    fs::write(&pred, "arch,accuracy\na1,1\na2,2\n").unwrap();
    let err = fails(fewshot().arg("rank").arg("--pred").arg(&pred).arg("--truth").arg(&truth));
    assert!(err.contains("line 4: column 'c10_test_acc' is not a finite number: 'n/a'"), "{err}");
    let err = fails(fewshot().arg("split").arg("--truth").arg(&truth));
    assert!(err.contains("is not a number"), "{err}");
}

/// Runs `fewshot args` with its standard output a pipe whose reader has gone; returns stderr,
/// which ends with the exit status as `status=N`.
fn into_closed_pipe(args: &[&OsStr]) -> String {
    let script = r#"{ sleep 0.5; "$0" "$@"; echo "status=$?" >&2; } | true"#;
    let (_, _, stderr) = run(Command::new("sh").env_remove("FEWSHOT_PLUGIN_PATH").args(["-c", script]).arg(fewshot().get_program()).args(args));
    stderr
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let list = into_closed_pipe(&["plugins", "list"].map(OsStr::new));
    assert_eq!(list, "status=0\n");
    let search = into_closed_pipe(&[OsStr::new("search"), OsStr::new("--run"), tiny_run().as_os_str()]);
    assert!(search.ends_with("status=0\n"), "{search}");
    assert!(!search.contains("error"), "{search}");
}

#[test]
fn plugins_check_explains_a_library_that_aborts_the_process() {
    let err = fails(
        fewshot()
            .env("FEWSHOT_FAULTY_MODE", "abort-in-entries")
            .args(["plugins", "check"])
            .arg(&examples().faulty),
    );
    assert!(err.contains("aborted the process while being checked (signal 6, SIGABRT)"), "{err}");
    assert!(err.contains("panic = \"abort\""), "{err}");
}
