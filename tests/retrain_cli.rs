//! `fewshot retrain`, MobileNet end to end and the `gradmatch` splitter, through the binary on
//! ImageFolder JPEGs from ../shared.

mod common;

use std::{fs, path::Path};

use common::{fewshot, jpeg_subset, run, shared_dir, temp_dir};

fn succeeds(cmd: &mut std::process::Command) -> (String, String) {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "failed: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

fn fails(cmd: &mut std::process::Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "expected a clear failure: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A tiny supernet search over `data` in `dir` (one epoch, a short evolution).
fn search(dir: &Path, data: &Path, space: &str, extra: &[&str]) {
    let mut cmd = fewshot();
    cmd.args(["run", "--estimator", "supernet", "--space", space, "--epochs", "1", "--batch", "16"])
        .args(["--valid-images", "40", "--test-images", "40", "--population", "4", "--generations", "1", "--rank-archs", "8"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(dir)
        .args(extra);
    succeeds(&mut cmd);
}

fn retrain(dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = fewshot();
    cmd.arg("retrain").arg("--run").arg(dir).args(["--epochs", "1", "--batch", "16"]).args(extra);
    cmd
}

#[test]
fn retrain_trains_the_best_found_architectures_and_shows_the_truth() {
    let root = temp_dir("retrain-nb201");
    let data = jpeg_subset(&root.join("data"), 12, 4);
    let truth = shared_dir().join("data/nb201/nb201.csv");
    let dir = root.join("run");
    search(&dir, &data, "nb201:N=1", &["--resolution", "16", "--truth", truth.to_str().unwrap()]);
    let (stdout, _) = succeeds(&mut retrain(&dir, &["--top", "2"]));
    assert!(stdout.contains("truth (c10_test_acc)"), "{stdout}");
    let table = fs::read_to_string(dir.join("retrain/retrain.csv")).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in &rows {
        let test: f64 = row[6].parse().unwrap();
        let recalibrated: f64 = row[7].parse().unwrap();
        let truth: f64 = row[8].parse().unwrap();
        assert!((0.0..=100.0).contains(&recalibrated), "{row:?}");
        assert!((0.0..=100.0).contains(&test) && truth > 0.0, "{row:?}");
        // 40 test images: every accuracy is a whole number of them.
        assert!((test * 0.4 - (test * 0.4).round()).abs() < 1e-6, "{test}");
    }
    for i in 0..2 {
        let arch = dir.join(format!("retrain/arch-{i}"));
        for file in ["model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "result.json"] {
            assert!(arch.join(file).is_file(), "{file} of arch-{i}");
        }
        let config = fs::read_to_string(arch.join("train_config.json")).unwrap();
        assert!(config.contains("\"channel_divisor\": 1.0") && config.contains("\"batch_norm\": \"affine\""), "{config}");
        assert!(config.contains("\"bn_momentum\": 0.1"), "{config}");
    }
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    let section = report.find("## Retrained architectures").expect("the run's report has the retrain section");
    assert!(section < report.find("## Configuration").unwrap(), "before the configuration");
    // The same retrain again: refused without --resume, a no-op with it.
    assert!(fails(&mut retrain(&dir, &["--top", "2"])).contains("--resume"));
    let before = fs::read(dir.join("retrain/arch-1/model.safetensors")).unwrap();
    let (again, _) = succeeds(&mut retrain(&dir, &["--top", "2", "--resume"]));
    assert_eq!(fs::read(dir.join("retrain/arch-1/model.safetensors")).unwrap(), before);
    assert_eq!(again.lines().nth(1), stdout.lines().nth(1), "the finished results are kept");
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(report.matches("## Retrained architectures").count(), 1, "the section is replaced, not repeated");
    // Bad input: a malformed architecture, a run without a search.
    let err = fails(&mut retrain(&dir, &["--arch", "|nor_conv_3x3~0|", "--out", root.join("bad").to_str().unwrap()]));
    assert!(err.contains("nor_conv_3x3~0"), "{err}");
    let empty = root.join("empty");
    let mut train = fewshot();
    train.args(["train", "--space", "nb201:N=1", "--epochs", "1", "--set", "data.builtin_train=64", "--valid-images", "8", "--test-images", "8"]).arg("--out").arg(&empty);
    succeeds(&mut train);
    assert!(fails(&mut retrain(&empty, &["--top", "1"])).contains("no search results"));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_mobilenet_search_and_the_retrain_of_its_best_architecture_complete() {
    let root = temp_dir("retrain-mobilenet");
    let data = jpeg_subset(&root.join("data"), 8, 4);
    let dir = root.join("run");
    search(&dir, &data, "mobilenet:classes=10", &["--resolution", "32"]);
    let config = fs::read_to_string(dir.join("config.toml")).unwrap();
    for line in ["lr = 0.12", "label_smoothing = 0.1", "resized_crop = 0.08", "decay_weights_only = true", "bn_recalibrate = 5"] {
        assert!(config.contains(line), "the paper's MobileNet recipe: {line} in\n{config}");
    }
    let plan = fs::read_to_string(dir.join("plan.json")).unwrap();
    assert_eq!(plan.matches("\"label\"").count(), 6, "K=6 count groups: {plan}");
    let (stdout, stderr) = succeeds(&mut retrain(&dir, &["--top", "1"]));
    assert!(stderr.contains("retraining 1/1"), "{stderr}");
    let result = fs::read_to_string(dir.join("retrain/arch-0/result.json")).unwrap();
    assert!(result.contains("test_accuracy"), "{result}");
    let config = fs::read_to_string(dir.join("retrain/arch-0/train_config.json")).unwrap();
    assert!(config.contains("step-decay") && config.contains("rmsprop"), "the mobilenet recipe: {config}");
    assert!(stdout.contains("test_acc"), "{stdout}");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn the_gradmatch_split_warms_up_once_and_trains_its_subspaces() {
    let root = temp_dir("gradmatch");
    let data = jpeg_subset(&root.join("data"), 8, 4);
    let dir = root.join("run");
    let splitter = "gradmatch:k=3,archs=2,batches=1";
    search(&dir, &data, "nb201:N=1", &["--resolution", "16", "--splitter", splitter]);
    let decision = fs::read_to_string(dir.join("split-gradmatch.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&decision).unwrap();
    assert_eq!(parsed["subspaces"].as_array().unwrap().len(), 3);
    assert_eq!(parsed["cuts"].as_array().unwrap().len(), 2);
    assert!(dir.join("gradmatch-warmup/checkpoint.safetensors").is_file());
    let metrics = fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"subspace\":2"), "three supernets trained: {metrics}");
    // Reopening the run reads the decision: no warm-up again.
    let mut again = fewshot();
    again.args(["search", "--run"]).arg(&dir);
    let (_, stderr) = succeeds(&mut again);
    assert!(!stderr.contains("warming up"), "{stderr}");
    // `fewshot split` shows the split, warming up in a temporary folder.
    let mut split = fewshot();
    split.args(["split", "--space", "nb201:N=1", "--splitter", splitter, "--resolution", "16"]).arg("--data").arg(&data);
    let (stdout, stderr) = succeeds(&mut split);
    assert!(stderr.contains("warming up") && stdout.contains("3 subspaces"), "{stdout}\n{stderr}");
    let _ = fs::remove_dir_all(&root);
}
