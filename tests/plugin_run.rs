//! A library plugin used in runs: the example activation-space library's `act-chain` space and
//! `round-robin` sampler, loaded with `--plugin`, through `run`, `eval --all`, `retrain` and a resumed `train`.

mod common;

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use common::{fewshot, run, temp_dir, workspace_root};

/// The package of the example library.
const PACKAGE: &str = "fewshot-example-activation-space";

/// The example library, built once per test run with cargo into `<target>/plugin-builds` (the
/// folder tests/plugin_host.rs builds into: a target dir of its own, so the nested cargo never
/// waits for the lock of the build that runs the tests, and later runs rebuild nothing).
fn library() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test binary>
        let builds = exe.ancestors().nth(3).expect("test binary lives in <target>/<profile>/deps").join("plugin-builds");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "-p", PACKAGE, "--manifest-path"])
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&builds)
            .output()
            .expect("failed to run cargo");
        assert!(out.status.success(), "building {PACKAGE} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stem = PACKAGE.replace('-', "_");
        builds.join("release").join(format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
    })
}

/// `fewshot --plugin <example library>`.
fn with_plugin() -> Command {
    let mut cmd = fewshot();
    cmd.arg("--plugin").arg(library());
    cmd
}

fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success() && !stderr.contains("panicked"), "failed: {stdout}\n{stderr}");
    stdout
}

/// `arch,subspace,accuracy` rows (act-chain architectures hold no comma).
fn estimates(csv: &str) -> Vec<(String, u32, f64)> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// The options of act-chain's layers.
const OPS: [&str; 4] = ["conv3x3", "conv1x1", "avgpool3x3", "skip"];

/// Convolution layers of an act-chain architecture (`conv3x3-skip-conv1x1`).
fn convolutions(arch: &str) -> usize {
    let layers: Vec<&str> = arch.split('-').collect();
    assert!(layers.len() == 3 && layers.iter().all(|l| OPS.contains(l)), "not a 3-layer act-chain architecture: {arch}");
    layers.iter().filter(|l| l.starts_with("conv")).count()
}

#[test]
fn a_run_on_a_library_space_with_a_library_sampler() {
    let dir = temp_dir("plugin-run").join("run");
    let mut cmd = with_plugin();
    cmd.arg("run")
        .args(["--space", "act-chain:layers=3,C=8", "--sampler", "round-robin", "--epochs", "2", "--batch", "16"])
        .args(["--set", "data.builtin_train=128", "--set", "data.builtin_test=64", "--valid-images", "32", "--test-images", "32"])
        .args(["--set", "eval.batch_size=16", "--population", "4", "--generations", "1", "--estimator", "supernet", "--out"])
        .arg(&dir);
    let out = succeeds(&mut cmd);
    let config = fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("spec = \"act-chain:layers=3,C=8\"") && config.contains("sampler = \"round-robin\""), "{config}");

    // The plan: 4^3 layer choices less the 2^3 without a convolution, split by the count of
    // activations (one per convolution) into the space's default groups 0-1 and rest.
    let plan: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["total"], 56);
    let sizes: Vec<u64> = plan["subspaces"].as_array().unwrap().iter().map(|s| s["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [3 * 2 * 4, 3 * 4 * 2 + 8], "one convolution: 24; two or three: 24 + 8");

    // round-robin trains one supernet per step, in turn.
    for line in fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let steps = record["steps"].as_u64().unwrap();
        let per_supernet: Vec<u64> = record["supernets"].as_array().unwrap().iter().map(|s| s["steps"].as_u64().unwrap()).collect();
        assert_eq!(per_supernet.iter().sum::<u64>(), steps, "{line}");
        assert!(per_supernet[0].abs_diff(per_supernet[1]) <= 1, "{line}");
    }

    // `eval --all` estimates every architecture of the space, each in the subspace of its count.
    let all = estimates(&succeeds(with_plugin().args(["eval", "--all", "--run"]).arg(&dir)));
    assert_eq!(all.len(), 56);
    let mut seen = std::collections::HashSet::new();
    for (arch, subspace, accuracy) in &all {
        assert!(seen.insert(arch.clone()), "{arch} twice");
        assert_eq!(*subspace, u32::from(convolutions(arch) > 1), "{arch}");
        assert!((0.0..=100.0).contains(accuracy) && (accuracy * 32.0 / 100.0).fract() == 0.0, "{arch}: {accuracy}");
    }
    // ... with the accuracies the search scored, and the best one printed is their maximum.
    let by_arch: HashMap<&str, f64> = all.iter().map(|(a, _, v)| (a.as_str(), *v)).collect();
    let search = fs::read_to_string(dir.join("search.csv")).unwrap();
    let scored: Vec<(&str, f64)> = search
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[1], f[3].parse().unwrap())
        })
        .collect();
    assert_eq!(scored.len(), 8);
    for (arch, accuracy) in &scored {
        assert_eq!(by_arch[arch], *accuracy, "{arch}");
    }
    let best: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
    let top = scored.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    assert_eq!(best["accuracy"].as_f64(), Some(top));
    assert!(out.starts_with(&format!("best architecture: {}\n", best["arch"].as_str().unwrap())), "{out}");

    // The best two, retrained from scratch as stand-alone networks of the library's space.
    let table = succeeds(with_plugin().args(["retrain", "--top", "2", "--epochs", "1", "--batch", "16", "--run"]).arg(&dir));
    let rows = fs::read_to_string(dir.join("retrain/retrain.csv")).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    assert!(table.contains("test_acc") && dir.join("retrain/arch-1/model.safetensors").is_file(), "{table}");

    // Without the library the run's space is unknown: a clear error.
    let (out, _, stderr) = run(fewshot().args(["eval", "--all", "--run"]).arg(&dir));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no space plugin named `act-chain`"), "{stderr}");
}

#[test]
fn a_library_sampler_resumes_from_its_checkpointed_position() {
    let dir = temp_dir("plugin-resume");
    // 60 training images in batches of 20: 3 steps an epoch, so round-robin ends epoch 1 midway
    // through its 2 subspaces, and a resumed run continues correctly only from the saved position.
    let train = |out: &Path, extra: &[&str]| {
        let mut cmd = with_plugin();
        cmd.arg("train")
            .args(["--space", "act-chain:layers=3,C=8", "--sampler", "round-robin", "--epochs", "2", "--batch", "20"])
            .args(["--set", "data.builtin_train=128", "--valid-images", "32", "--test-images", "32", "--out"])
            .arg(out)
            .args(extra);
        succeeds(&mut cmd)
    };
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    train(&straight, &[]);
    train(&resumed, &["--stop-after", "1"]);
    succeeds(with_plugin().args(["train", "--resume", "--out"]).arg(&resumed));
    let steps = |dir: &Path| -> Vec<Vec<u64>> {
        fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let record: serde_json::Value = serde_json::from_str(l).unwrap();
                record["supernets"].as_array().unwrap().iter().map(|s| s["steps"].as_u64().unwrap()).collect()
            })
            .collect()
    };
    assert_eq!(steps(&straight), [[2, 1], [1, 2]], "round-robin over 3 steps an epoch");
    assert_eq!(steps(&resumed), steps(&straight));
    let checkpoint = |dir: &Path| fs::read(dir.join("checkpoint.safetensors")).unwrap();
    assert!(checkpoint(&resumed) == checkpoint(&straight), "the resumed run differs from the uninterrupted one");
}

#[test]
fn a_library_space_with_a_depthwise_separable_option_trains_and_benches() {
    // `act-chain:separable=true` adds a depthwise 3×3 → BN → pointwise block (groups = channels)
    // to every layer; grouped convolutions once deadlocked training in their backward pass.
    let space = "act-chain:separable=true,layers=3,C=8,activation=relu6";
    let dir = temp_dir("plugin-separable");
    let out = succeeds(
        with_plugin()
            .args(["train", "--space", space, "--epochs", "1", "--batch", "16", "--valid-images", "32", "--test-images", "32"])
            .args(["--set", "data.builtin_train=96", "--set", "data.builtin_test=32", "--out"])
            .arg(dir.join("run")),
    );
    assert!(fs::read_to_string(dir.join("run/config.toml")).unwrap().contains("separable=true"), "{out}");
    let metrics = fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let epoch: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let loss = epoch["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{epoch}");
    let all_sep = "sep3x3-sep3x3-sep3x3";
    let eval = succeeds(with_plugin().args(["eval", "--arch", all_sep, "--split", "test", "--run"]).arg(dir.join("run")));
    assert_eq!(estimates(&eval).len(), 1, "{eval}");
    let bench = succeeds(with_plugin().args(["bench", "step", "--space", space, "--steps", "2", "--warmup", "0", "--batch", "8"]));
    assert!(bench.contains("RESULT ms_per_step="), "{bench}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn every_proxy_scores_the_library_space_with_smooth_and_piecewise_linear_activations() {
    let dir = temp_dir("plugin-score");
    for activation in ["gelu", "tanh", "relu"] {
        for proxy in ["naswot", "az", "synflow", "snip"] {
            let mut cmd = with_plugin();
            cmd.env("XDG_CACHE_HOME", dir.join("cache"))
                .args(["score", "--proxy", proxy, "--space", "act-chain:layers=3", "--activation", activation, "--batch", "16", "--all"]);
            let out = succeeds(&mut cmd);
            let rows: Vec<(&str, f64)> = out.lines().skip(1).map(|l| (l.split(',').next().unwrap(), l.split(',').nth(1).unwrap().parse().unwrap())).collect();
            // act-chain refuses architectures without a convolution: 4³ − 2³ remain.
            assert_eq!(rows.len(), 56, "{proxy} {activation}: {out}");
            assert!(rows.iter().all(|(arch, s)| convolutions(arch) > 0 && !s.is_nan()), "{proxy} {activation}: {out}");
            let distinct: std::collections::HashSet<u64> = rows.iter().map(|r| r.1.to_bits()).collect();
            assert!(distinct.len() > 10, "{proxy} {activation}: the scores tell architectures apart: {out}");
        }
    }
}
