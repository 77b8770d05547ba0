//! End-to-end tests of the training pipeline commands: `train`, `eval`, `search`, `run` and
//! `compare`, on tiny budgets (a one-cell-per-stage NB201 network, a few dozen built-in images).

mod common;

use std::{fs, path::Path, process::Command};

use common::{fewshot, run, temp_dir};

/// Options that make every stage take a second or two.
const TINY: &[&str] = &[
    "--space",
    "nb201:N=1",
    "--set",
    "data.builtin_train=128",
    "--set",
    "data.builtin_test=64",
    "--valid-images",
    "32",
    "--test-images",
    "32",
    "--batch",
    "16",
    "--set",
    "eval.batch_size=16",
    "--population",
    "4",
    "--generations",
    "1",
];

fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "failed: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

fn fails(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "expected exit 2: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked") && !stdout.contains("panicked"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("error: ")), "{stderr}");
    stderr
}

fn train(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = fewshot();
    cmd.arg("train").args(TINY).arg("--out").arg(dir).args(extra);
    cmd
}

/// Steps each supernet received over the run, from metrics.jsonl.
fn steps_per_supernet(dir: &Path) -> Vec<u64> {
    let text = fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let mut totals: Vec<u64> = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        for (k, s) in record["supernets"].as_array().unwrap().iter().enumerate() {
            if totals.len() <= k {
                totals.push(0);
            }
            totals[k] += s["steps"].as_u64().unwrap();
        }
    }
    totals
}

#[test]
fn sbs_trains_every_supernet_equally_and_uniform_does_not() {
    let dir = temp_dir("sbs");
    succeeds(&mut train(&dir.join("sbs"), &["--epochs", "2", "--sampler", "sbs"]));
    let sbs = steps_per_supernet(&dir.join("sbs"));
    assert_eq!(sbs.len(), 3);
    assert!(sbs.iter().all(|&s| s == sbs[0] && s > 0), "{sbs:?}");
    for file in ["config.toml", "plan.json", "checkpoint.safetensors", "metrics.jsonl"] {
        assert!(dir.join("sbs").join(file).exists(), "{file} missing");
    }

    succeeds(&mut train(&dir.join("uniform"), &["--epochs", "4", "--set", "train.batch_size=4", "--sampler", "uniform"]));
    let uniform = steps_per_supernet(&dir.join("uniform"));
    // SPOS draws uniformly over the whole space: the 9105-architecture subspace gets most steps.
    assert!(uniform[0] > uniform[1] && uniform[1] > uniform[2], "{uniform:?}");
}

#[test]
fn an_interrupted_and_resumed_run_ends_bit_identical() {
    let dir = temp_dir("resume");
    succeeds(&mut train(&dir.join("straight"), &["--epochs", "2", "--sampler", "fair"]));
    succeeds(&mut train(&dir.join("resumed"), &["--epochs", "2", "--sampler", "fair", "--stop-after", "1"]));
    let half = fs::read_to_string(dir.join("resumed/metrics.jsonl")).unwrap();
    assert_eq!(half.lines().count(), 1);
    let mut resume = fewshot();
    resume.args(["train", "--resume", "--out"]).arg(dir.join("resumed"));
    succeeds(&mut resume);
    let a = fs::read(dir.join("straight/checkpoint.safetensors")).unwrap();
    let b = fs::read(dir.join("resumed/checkpoint.safetensors")).unwrap();
    assert!(a == b, "resumed checkpoint differs from the uninterrupted one");

    // Training again into a directory that holds a run is refused, not overwritten.
    let err = fails(&mut train(&dir.join("straight"), &["--epochs", "2", "--sampler", "fair"]));
    assert!(err.contains("resume"), "{err}");
    let err = fails(&mut train(&dir.join("straight"), &["--epochs", "3", "--sampler", "fair"]));
    assert!(err.contains("train.epochs"), "{err}");
}

#[test]
fn eval_writes_accuracies_and_rejects_bad_input() {
    let dir = temp_dir("eval");
    let run_dir = dir.join("run");
    let err = fails(fewshot().args(["eval", "--arch", "x", "--run"]).arg(&run_dir));
    assert!(err.contains("not a fewshot run directory"), "{err}");
    succeeds(&mut train(&run_dir, &["--epochs", "1"]));

    let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    let out = succeeds(fewshot().args(["eval", "--arch", arch, "--run"]).arg(&run_dir));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "arch,subspace,accuracy");
    let fields: Vec<&str> = lines[1].rsplitn(3, ',').collect();
    let accuracy: f64 = fields[0].parse().unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{out}");
    assert_eq!(fields[1], "1", "two conv edges on the longest path: subspace `count 2`");

    let list = dir.join("archs.txt");
    fs::write(&list, format!("# two architectures\n{arch}\n|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|\n")).unwrap();
    let csv = dir.join("out.csv");
    succeeds(fewshot().args(["eval", "--split", "test", "--archs"]).arg(&list).arg("--output").arg(&csv).arg("--run").arg(&run_dir));
    let written = fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().count(), 3, "{written}");
    // Evaluation is deterministic.
    succeeds(fewshot().args(["eval", "--split", "test", "--archs"]).arg(&list).arg("--output").arg(dir.join("again.csv")).arg("--run").arg(&run_dir));
    assert_eq!(written, fs::read_to_string(dir.join("again.csv")).unwrap());

    let err = fails(fewshot().args(["eval", "--arch", "|bogus~0|", "--run"]).arg(&run_dir));
    assert!(err.contains("malformed NB201 architecture"), "{err}");
    fs::write(&list, "not an architecture\n").unwrap();
    let err = fails(fewshot().args(["eval", "--archs"]).arg(&list).arg("--run").arg(&run_dir));
    assert!(err.contains("line 1"), "{err}");

    // A corrupt checkpoint is a clear error, and is left in place.
    let checkpoint = run_dir.join("checkpoint.safetensors");
    let bytes = fs::read(&checkpoint).unwrap();
    fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(fewshot().args(["eval", "--arch", arch, "--run"]).arg(&run_dir));
    assert!(err.contains("checkpoint"), "{err}");
    assert_eq!(fs::read(&checkpoint).unwrap().len(), bytes.len() / 2);
}

#[test]
fn run_completes_every_stage_resumes_and_ranks_against_the_truth() {
    let dir = temp_dir("run").join("r");
    let truth = common::shared_dir().join("data/nb201/nb201.csv");
    let mut cmd = fewshot();
    cmd.arg("run").args(TINY).args(["--epochs", "1", "--rank-archs", "12", "--truth"]).arg(&truth).arg("--out").arg(&dir);
    let out = succeeds(&mut cmd);
    assert!(out.contains("best architecture:") && out.contains("Kendall tau over 12 architectures"), "{out}");
    for file in ["report.md", "search.csv", "best.json", "rank.json", "predictions.csv", "plots/training.svg", "plots/pareto.svg", "plots/pred_vs_truth.svg"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    for section in ["## Plan", "## Training", "## Best architectures", "Kendall", "plots/pred_vs_truth.svg"] {
        assert!(report.contains(section), "report lacks {section}:\n{report}");
    }
    let rank: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("rank.json")).unwrap()).unwrap();
    assert_eq!(rank["predictor"]["overall"]["n"], 12);
    assert_eq!(rank["baselines"].as_array().unwrap().len(), 2);
    let search = fs::read_to_string(dir.join("search.csv")).unwrap();
    assert!(search.starts_with("generation,arch,subspace,accuracy,flops_m,params_m\n"));
    assert_eq!(search.lines().count(), 1 + 8, "population 4 for 1 + 1 generations");

    // The same command again finds every stage done and reports the same result.
    let best = fs::read_to_string(dir.join("best.json")).unwrap();
    let again = succeeds(&mut cmd);
    assert_eq!(fs::read_to_string(dir.join("best.json")).unwrap(), best);
    assert_eq!(again.lines().next(), out.lines().next());

    // `search --strategy random --restart` replaces the search with the same budget.
    succeeds(fewshot().args(["search", "--strategy", "random", "--restart", "--run"]).arg(&dir));
    let random = fs::read_to_string(dir.join("search.csv")).unwrap();
    assert_eq!(random.lines().count(), 1 + 8);
}

#[test]
fn compare_runs_each_activation_and_tabulates_them() {
    let dir = temp_dir("compare");
    let mut cmd = fewshot();
    cmd.arg("compare").args(TINY).args(["--epochs", "1", "--activations", "relu,tanh", "--out"]).arg(&dir);
    let out = succeeds(&mut cmd);
    assert!(out.contains("relu") && out.contains("tanh"), "{out}");
    for file in ["comparison.csv", "comparison.md", "comparison.svg", "relu/report.md", "tanh/report.md"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let config = fs::read_to_string(dir.join("tanh/config.toml")).unwrap();
    assert!(config.contains("activation = \"tanh\""), "{config}");
}

#[test]
fn bad_configurations_are_clear_errors() {
    let dir = temp_dir("badconfig");
    let err = fails(fewshot().args(["run", "--set", "train.epochz=3", "--out"]).arg(dir.join("a")));
    assert!(err.contains("epochz"), "{err}");
    let err = fails(fewshot().args(["run", "--sampler", "nosuch", "--out"]).arg(dir.join("b")));
    assert!(err.contains("no sampler plugin named `nosuch`"), "{err}");
    let err = fails(fewshot().args(["run", "--device", "tpu", "--out"]).arg(dir.join("c")));
    assert!(err.contains("device"), "{err}");
    let err = fails(fewshot().args(["train", "--data"]).arg(dir.join("missing")).arg("--out").arg(dir.join("d")));
    assert!(err.contains("does not exist"), "{err}");
    let toml = dir.join("bad.toml");
    fs::write(&toml, "[train]\nepochs = \"three\"\n").unwrap();
    let err = fails(fewshot().args(["run", "--config"]).arg(&toml).arg("--out").arg(dir.join("e")));
    assert!(err.contains("bad.toml"), "{err}");
}
