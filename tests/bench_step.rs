//! `fewshot bench step` and `bench eval`: the training-step and evaluation benchmarks run and
//! report; bad input exits 2.

mod common;

use std::collections::HashMap;

use common::{fewshot, run, shared_dir, temp_dir};

/// The `key=value` fields of a line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace().filter_map(|f| f.split_once('=')).collect()
}

#[test]
fn bench_step_reports_a_consistent_median() {
    let archs = shared_dir().join("bench/sbs_archs.txt");
    let (out, stdout, stderr) = run(fewshot().args(["bench", "step", "--steps", "3", "--warmup", "1", "--batch", "4", "--supernets", "2"]).arg("--archs").arg(&archs));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // The settings line echoes what was asked.
    let settings = fields(lines[0]);
    for (key, value) in [("device", "cpu"), ("K", "2"), ("divisor", "2"), ("batch", "4"), ("steps", "3"), ("warmup", "1")] {
        assert_eq!(settings.get(key), Some(&value), "{key} in {}", lines[0]);
    }
    let result = lines[1].strip_prefix("RESULT ").unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    let values: HashMap<&str, f64> = fields(result).into_iter().map(|(k, v)| (k, v.parse().unwrap_or_else(|e| panic!("{k}={v}: {e}")))).collect();
    let [ms, images_per_s, min, max] = ["ms_per_step", "images_per_s", "min_ms", "max_ms"].map(|k| values[k]);
    assert!(ms.is_finite() && ms > 0.0 && ms < 60_000.0, "{result}");
    assert!(min <= ms && ms <= max, "the median lies between the extremes: {result}");
    // Printed with one decimal: images/s = batch / median, up to that rounding.
    let slowest = 4000.0 / (ms + 0.05);
    let fastest = 4000.0 / (ms - 0.05).max(0.01);
    assert!((slowest - 0.05..=fastest + 0.05).contains(&images_per_s), "{result}");
    if let Some(cpu) = values.get("cpu_ms_per_step") {
        assert!(cpu.is_finite() && *cpu > 0.0, "{result}");
    }
}

#[test]
fn bench_step_input_errors_exit_2() {
    let dir = temp_dir("bench-step");
    let missing = dir.join("none.txt");
    let (out, _, stderr) = run(fewshot().args(["bench", "step", "--steps", "1"]).arg("--archs").arg(&missing));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("none.txt") && !stderr.contains("panicked"), "{stderr}");

    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2| a b\n").unwrap();
    let (out, _, stderr) = run(fewshot().args(["bench", "step", "--steps", "1"]).arg("--archs").arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.txt line 1") && stderr.contains("bogus"), "{stderr}");

    #[cfg(not(feature = "cuda"))]
    {
        let archs = shared_dir().join("bench/sbs_archs.txt");
        let (out, _, stderr) = run(fewshot().args(["bench", "step", "--steps", "1", "--device", "cuda"]).arg("--archs").arg(&archs));
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("without CUDA support"), "{stderr}");
    }
    for bad in [["--steps", "0"], ["--batch", "1"], ["--supernets", "0"]] {
        let (out, _, stderr) = run(fewshot().args(["bench", "step"]).args(bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("must be positive and --batch at least 2"), "{bad:?}: {stderr}");
    }
    let (out, _, stderr) = run(fewshot().args(["bench", "step", "--device", "tpu"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

#[test]
fn bench_eval_times_the_estimates_of_a_trained_run() {
    let dir = temp_dir("bench-eval");
    let run_dir = dir.join("run");
    let mut train = fewshot();
    train.args(["train", "--space", "nb201:N=1", "--epochs", "1", "--batch", "16", "--set", "data.builtin_train=128"]);
    train.args(["--set", "data.builtin_test=64", "--valid-images", "32", "--test-images", "32", "--set", "eval.batch_size=16"]);
    let (out, _, stderr) = run(train.arg("--out").arg(&run_dir));
    assert!(out.status.success(), "{stderr}");
    let archs = dir.join("archs.txt");
    let list = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|"];
    std::fs::write(&archs, list.join("\n")).unwrap();
    let (out, stdout, stderr) = run(fewshot().args(["bench", "eval", "--run"]).arg(&run_dir).arg("--archs").arg(&archs).args(["--limit", "2"]));
    assert!(out.status.success(), "{stderr}");
    let settings = fields(stdout.lines().next().unwrap());
    assert_eq!((settings.get("split"), settings.get("images"), settings.get("batch")), (Some(&"test"), Some(&"32"), Some(&"16")), "{stdout}");
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    let values = fields(result);
    assert_eq!(values["archs"], "2", "--limit 2: {result}");
    let rate: f64 = values["archs_per_s"].parse().unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{result}");

    let (out, _, stderr) = run(fewshot().args(["bench", "eval", "--run"]).arg(dir.join("nowhere")).arg("--archs").arg(&archs));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: ") && !stderr.contains("panicked"), "{stderr}");
}
