//! End-to-end tests of `fewshot rank`: small hand-checked fixtures, bad input, and the real
//! NAS-Bench-201 table with synthetic predictions.

mod common;

use std::{fs, path::Path};

use common::{fewshot, run, shared_dir, temp_dir};
use serde_json::Value;

const TRUTH: &str = "\
index,arch,c10_test_acc,c10_params_mb,c10_flops_m
0,a1,90,1,6
1,a2,80,2,5
2,a3,70,3,4
3,a4,60,4,3
4,a5,50,5,1
5,a6,40,6,2
6,unused,35,7,7
";

// Group 0 (a1–a3) is ranked badly (τ-b −1/3), group 1 perfectly; overall τ-b = 11/15.
const PRED: &str = "\
arch,subspace,accuracy
a1,0,70.1
a2,0,70.3
a3,0,70.2
a4,1,60.3
a5,1,60.2
a6,1,60.1
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn rank(args: &[&str]) -> (i32, String, String) {
    let (out, stdout, stderr) = run(fewshot().arg("rank").args(args));
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[test]
fn table_shows_every_scope_with_baselines_and_verdicts() {
    let dir = temp_dir("rank-table");
    let (truth, pred) = (write(&dir, "truth.csv", TRUTH), write(&dir, "pred.csv", PRED));
    let (code, stdout, stderr) = rank(&["--pred", &pred, "--truth", &truth, "--top-percent", "50"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("on 6 architectures"), "{stdout}");
    let row = |scope: &str, predictor: &str| -> Vec<String> {
        stdout
            .lines()
            .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect::<Vec<_>>())
            .find(|cells| cells.len() > 2 && cells[0] == scope && cells[1] == predictor)
            .unwrap_or_else(|| panic!("no row {scope}/{predictor} in\n{stdout}"))
    };
    assert_eq!(row("all", "accuracy")[2..4], ["6", "0.7333"]);
    assert_eq!(row("all", "params")[3], "-1.0000");
    assert_eq!(row("all", "flops")[3], "0.8667");
    assert_eq!(row("subspace 0", "accuracy")[2..4], ["3", "-0.3333"]);
    assert_eq!(row("subspace 1", "accuracy")[3], "1.0000");
    assert_eq!(row("subspace 1", "flops")[3], "0.3333");
    // overlap@50% and precision@50%: the predicted top 3 are exactly the true top 3.
    assert_eq!(row("all", "accuracy")[5..7], ["1.0000", "1.0000"]);
    assert!(stdout.contains("all: accuracy τ-b 0.7333 beats params (-1.0000), does NOT beat flops (0.8667)"), "{stdout}");
    assert!(stdout.contains("subspace 0: accuracy τ-b -0.3333 beats params (-1.0000), does NOT beat flops (1.0000)"));
    assert!(stdout.contains("subspace 1: accuracy τ-b 1.0000 beats params (-1.0000) and flops (0.3333)"));
}

#[test]
fn json_holds_overall_group_and_baseline_metrics() {
    let dir = temp_dir("rank-json");
    let (truth, pred) = (write(&dir, "truth.csv", TRUTH), write(&dir, "pred.csv", PRED));
    let out = dir.join("rank.json");
    let plot = dir.join("scatter.svg");
    let (code, stdout, stderr) = rank(&[
        "--pred", &pred, "--truth", &truth, "--format", "json",
        "--output", out.to_str().unwrap(), "--plot", plot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "--output writes the file only: {stdout}");
    let json: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["pred_column"], "accuracy");
    assert_eq!(json["truth_column"], "c10_test_acc");
    assert_eq!(json["group_column"], "subspace");
    assert_eq!(json["percents"], serde_json::json!([1.0, 5.0]));
    let predictor = &json["predictor"];
    assert_eq!(predictor["name"], "accuracy");
    assert_eq!(predictor["overall"]["n"], 6);
    assert!(close(&predictor["overall"]["kendall_tau_b"], 11.0 / 15.0));
    assert_eq!(predictor["overall"]["top_k"][0]["k"], 1);
    // The predicted best (a2) is not the true best (a1).
    assert!(close(&predictor["overall"]["top_k"][0]["overlap"], 0.0));
    assert_eq!(predictor["groups"][0]["group"], "0");
    assert!(close(&predictor["groups"][0]["metrics"]["kendall_tau_b"], -1.0 / 3.0));
    // Three architectures: the spearman ρ of group 1 is perfect, top-k sizes are clamped to 1.
    assert!(close(&predictor["groups"][1]["metrics"]["spearman_rho"], 1.0));
    let baselines: Vec<&str> = json["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(baselines, ["params", "flops"]);
    assert!(close(&json["baselines"][1]["overall"]["kendall_tau_b"], 13.0 / 15.0));
    let verdicts = json["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 6);
    assert_eq!(verdicts[0], serde_json::json!({"group": null, "baseline": "params", "beats": true}));
    assert_eq!(verdicts[1], serde_json::json!({"group": null, "baseline": "flops", "beats": false}));
    let svg = fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Kendall τ-b = 0.7333"));
}

#[test]
fn groups_can_come_from_the_truth_table_or_be_absent() {
    let dir = temp_dir("rank-groups");
    let truth = write(
        &dir,
        "truth.csv",
        "arch,c10_test_acc,cells\na1,90,x\na2,80,x\na3,70,x\na4,60,y\na5,50,y\na6,40,y\n",
    );
    let pred = write(&dir, "pred.csv", "arch,score\na1,3\na2,2\na3,1\na4,4\na5,5\na6,6\n");
    let (code, stdout, stderr) = rank(&["--pred", &pred, "--truth", &truth, "--pred-column", "score", "--group-column", "cells"]);
    assert_eq!(code, 0, "{stderr}");
    let squeezed: Vec<String> = stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(squeezed.iter().any(|l| l.starts_with("cells x score 3 1.0000")), "{stdout}");
    assert!(squeezed.iter().any(|l| l.starts_with("cells y score 3 -1.0000")), "{stdout}");
    let (code, stdout, _) = rank(&["--pred", &pred, "--truth", &truth, "--pred-column", "score"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("cells x"), "no groups unless asked or a subspace column exists:\n{stdout}");
}

#[test]
fn without_cost_columns_the_missing_baselines_are_said() {
    let dir = temp_dir("rank-nobase");
    let truth = write(&dir, "truth.csv", "arch,acc\na1,1\na2,2\na3,3\n");
    let pred = write(&dir, "pred.csv", "arch,accuracy\na1,1\na2,3\na3,2\n");
    let (code, stdout, stderr) = rank(&["--pred", &pred, "--truth", &truth, "--truth-column", "acc"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("no trivial predictors"), "{stdout}");
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let dir = temp_dir("rank-bad");
    let truth = write(&dir, "truth.csv", TRUTH);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--pred".into(), write(&dir, "p1.csv", "arch,accuracy\na1,1\nzz,2\nyy,3\n")], "2 of 3 architectures in"),
        (vec!["--pred".into(), write(&dir, "p2.csv", "arch,accuracy\na1,1\na2,2\na1,3\n")], "line 4: architecture 'a1' appears again (first on line 2)"),
        (vec!["--pred".into(), write(&dir, "p3.csv", "arch,accuracy\na1,1\na2,high\n")], "line 3: column 'accuracy' is not a number: 'high'"),
        (vec!["--pred".into(), write(&dir, "p4.csv", "arch,accuracy\na1,NaN\n")], "is not a number: 'NaN'"),
        (vec!["--pred".into(), write(&dir, "p5.csv", "arch,acc\na1,1\n")], "no column 'accuracy' (columns: arch, acc)"),
        (vec!["--pred".into(), write(&dir, "p6.csv", "arch,accuracy\n")], "no predictions"),
        (vec!["--pred".into(), write(&dir, "p7.csv", "arch,accuracy\na1,1,extra\n")], "not a valid CSV file"),
        (vec!["--pred".into(), dir.join("missing.csv").display().to_string()], "cannot read"),
        (vec!["--pred".into(), write(&dir, "p8.csv", PRED), "--group-column".into(), "nope".into()], "no column 'nope' in"),
        (vec!["--pred".into(), write(&dir, "p9.csv", PRED), "--top-percent".into(), "0".into()], "--top-percent must lie in (0, 100]"),
        (vec!["--pred".into(), write(&dir, "p10.csv", PRED), "--truth-column".into(), "c100".into()], "no column 'c100'"),
    ];
    for (mut args, message) in cases {
        args.extend(["--truth".to_string(), truth.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = rank(&args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(message), "{args:?}: expected '{message}' in {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one-line message: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let dup_truth = write(&dir, "dup-truth.csv", "arch,c10_test_acc\na1,1\na1,2\n");
    let (code, _, stderr) = rank(&["--pred", &write(&dir, "p11.csv", "arch,accuracy\na1,1\n"), "--truth", &dup_truth]);
    assert_eq!(code, 2);
    assert!(stderr.contains("dup-truth.csv: line 3: architecture 'a1' appears again"), "{stderr}");
}

/// The NAS-Bench-201 table: (arch, test accuracy, params) of every architecture.
fn nb201() -> (String, Vec<(String, f64, f64)>) {
    let path = shared_dir().join("data/nb201/nb201.csv");
    let mut reader = csv::Reader::from_path(&path).expect("cannot read ../shared/data/nb201/nb201.csv");
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (arch, acc, params) = (col("arch"), col("c10_test_acc"), col("c10_params_mb"));
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[arch].to_string(), r[acc].parse().unwrap(), r[params].parse().unwrap())
        })
        .collect();
    (path.display().to_string(), rows)
}

#[test]
fn nb201_with_synthetic_predictions() {
    let dir = temp_dir("rank-nb201");
    let (truth, rows) = nb201();
    assert_eq!(rows.len(), 15_625);
    // A deterministic "supernet": the true accuracy plus noise of ±3 points, in 3 subspaces.
    let noise = |i: usize| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64 * 6.0 - 3.0;
    let mut good = String::from("arch,subspace,accuracy\n");
    let mut params_like = String::from("arch,subspace,accuracy\n");
    for (i, (arch, acc, params)) in rows.iter().enumerate() {
        good += &format!("{arch},{},{:.4}\n", i % 3, acc + noise(i));
        params_like += &format!("{arch},{},{:.6}\n", i % 3, params + noise(i) * 1e-4);
    }
    let good = write(&dir, "good.csv", &good);
    let (code, stdout, stderr) = rank(&["--pred", &good, "--truth", &truth, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["predictor"]["overall"]["n"], 15_625);
    assert_eq!(json["predictor"]["overall"]["top_k"][0]["k"], 156);
    let tau = json["predictor"]["overall"]["kendall_tau_b"].as_f64().unwrap();
    assert!(tau > 0.6, "{tau}");
    // Params and FLOPs reach τ-b 0.578 over all 15,625 architectures (reference: ≈ 0.58).
    for b in 0..2 {
        let base = json["baselines"][b]["overall"]["kendall_tau_b"].as_f64().unwrap();
        assert!((base - 0.57785).abs() < 1e-4, "{base}");
    }
    assert_eq!(json["predictor"]["groups"].as_array().unwrap().len(), 3);
    assert_eq!(json["verdicts"][0]["beats"], true);

    // Params plus noise far below params' resolution: ties broken at random, τ-b about the same.
    let params_like = write(&dir, "params.csv", &params_like);
    let (code, stdout, stderr) = rank(&["--pred", &params_like, "--truth", &truth, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let tau = json["predictor"]["overall"]["kendall_tau_b"].as_f64().unwrap();
    assert!((0.5..0.6).contains(&tau), "{tau}");
}
