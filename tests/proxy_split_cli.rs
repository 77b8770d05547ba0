//! The host's `proxy` splitter through the CLI, on an ImageFolder subset of ../shared's CIFAR-10
//! JPEGs: NB201 planned over every architecture (exact quantiles), trained and ranked; MobileNet
//! planned over a seeded sample, with training draws scored as they come; the refusals.

mod common;

use std::{fs, path::Path, process::Command};

use common::{fewshot, jpeg_subset, run, shared_dir, temp_dir};

fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success() && !stderr.contains("panicked"), "failed: {stdout}\n{stderr}");
    stderr
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// A tiny run on `data`: one epoch; `batch` images per training, evaluation and proxy batch and
/// in the validation and test subsets.
fn tiny(cmd: &str, dir: &Path, data: &Path, batch: &str) -> Command {
    let mut c = fewshot();
    c.env("XDG_CACHE_HOME", dir.join("cache")).arg(cmd).args(["--estimator", "supernet", "--epochs", "1", "--batch", batch]);
    c.args(["--valid-images", batch, "--test-images", batch]);
    c.args(["--set", &format!("proxy.batch={batch}"), "--set", &format!("eval.batch_size={batch}")]);
    c.arg("--data").arg(data);
    c
}

#[test]
fn nb201_split_by_synflow_quantiles_trains_and_ranks() {
    let dir = temp_dir("proxy-split-nb201");
    let data = jpeg_subset(&dir.join("cifar"), 8, 2);
    let out = dir.join("run");
    let truth = shared_dir().join("data/nb201/nb201.csv");
    let mut cmd = tiny("run", &dir, &data, "16");
    cmd.args(["--space", "nb201:C=4,N=1", "--resolution", "8", "--splitter", "proxy:score=synflow,k=3"]);
    cmd.args(["--population", "4", "--generations", "1", "--rank-archs", "12"]).arg("--truth").arg(&truth).arg("--out").arg(&out);
    succeeds(&mut cmd);

    let plan = json(&out.join("plan.json"));
    assert_eq!(plan["exact"], true, "NB201 is planned over every architecture");
    let subspaces = plan["subspaces"].as_array().unwrap();
    assert_eq!(subspaces.len(), 3);
    let sizes: Vec<u64> = subspaces.iter().map(|s| s["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 15_625);
    assert!(sizes.iter().all(|&n| (4_800..=5_600).contains(&n)), "tertiles of nearly equal size: {sizes:?}");
    for (i, s) in subspaces.iter().enumerate() {
        let label = s["label"].as_str().unwrap();
        assert!(label.starts_with(&format!("synflow {}/3 [", i + 1)), "{label}");
    }
    // Every architecture was scored once and kept in the run directory.
    let scores = fs::read_to_string(out.join("split-scores-synflow.csv")).unwrap();
    assert_eq!(scores.lines().count(), 15_626, "a header and every architecture");
    assert!(out.join("rank.json").exists() && out.join("report.md").exists());
}

#[test]
fn mobilenet_split_is_planned_over_a_sample_and_scores_draws_on_demand() {
    let dir = temp_dir("proxy-split-mobilenet");
    let data = jpeg_subset(&dir.join("cifar"), 4, 1);
    let out = dir.join("run");
    let mut cmd = tiny("train", &dir, &data, "8");
    cmd.args(["--space", "mobilenet:resolution=32,classes=10", "--splitter", "proxy:score=naswot,k=2,sample=6"]).arg("--out").arg(&out);
    succeeds(&mut cmd);
    let plan = json(&out.join("plan.json"));
    assert_eq!(plan["exact"], false);
    assert_eq!(plan["sample"], 6);
    assert_eq!(plan["subspaces"].as_array().unwrap().len(), 2);
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "one epoch trained");
    // The sample's scores are kept (architectures drawn for training are scored as they come,
    // in memory).
    let stored = fs::read_to_string(out.join("split-scores-naswot.csv")).unwrap();
    assert!((2..=7).contains(&stored.lines().count()), "{stored}");
}

#[test]
fn az_needs_a_component_when_the_plan_is_sampled() {
    let mut cmd = fewshot();
    cmd.args(["split", "--space", "mobilenet:classes=10", "--splitter", "proxy:score=az,sample=10"]);
    let (out, _, stderr) = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("score=az.expressivity") && !stderr.contains("panicked"), "{stderr}");
    let mut cmd = fewshot();
    cmd.args(["split", "--splitter", "proxy:score=naswot,k=2,sample=1"]);
    let (out, _, stderr) = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot fill k=2"), "{stderr}");
}
