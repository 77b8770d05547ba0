//! `fewshot bench step`: the training-step benchmark runs and reports; bad input exits 2.

mod common;

use common::{fewshot, run, shared_dir, temp_dir};

#[test]
fn bench_step_reports_a_median() {
    let archs = shared_dir().join("bench/sbs_archs.txt");
    let (out, stdout, stderr) = run(fewshot().args(["bench", "step", "--steps", "2", "--warmup", "0", "--batch", "4"]).arg("--archs").arg(&archs));
    assert!(out.status.success(), "{stderr}");
    let result = stdout.lines().find(|l| l.starts_with("RESULT ")).unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    let ms: f64 = result
        .split_whitespace()
        .find_map(|f| f.strip_prefix("ms_per_step="))
        .and_then(|v| v.parse().ok())
        .expect("ms_per_step");
    assert!(ms > 0.0);
    assert!(stdout.contains("K=3"), "{stdout}");
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
    let (out, _, stderr) = run(fewshot().args(["bench", "step", "--device", "tpu"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}
