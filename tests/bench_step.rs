//! `fewshot bench step`: the training-step benchmark runs and reports; bad input exits 2.

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
