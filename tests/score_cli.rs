//! `fewshot score` and the proxy estimators through the CLI, on an ImageFolder subset of
//! ../shared's CIFAR-10 JPEGs: every proxy on NB201 and on MobileNet at a small resolution,
//! determinism, resuming, refused settings, and a run whose estimator is an ensemble.

mod common;

use std::{fs, path::Path, process::Command};

use common::{fewshot, jpeg_subset, run, temp_dir};

const PROXIES: [&str; 4] = ["naswot", "az", "synflow", "snip"];

fn succeeds(cmd: &mut Command) -> (String, String) {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success() && !stderr.contains("panicked"), "failed: {stdout}\n{stderr}");
    (stdout, stderr)
}

fn fails(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "expected exit 2: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked") && stderr.lines().any(|l| l.starts_with("error: ")), "{stderr}");
    stderr
}

/// `fewshot score` on `data`, decoding into `dir`'s cache.
fn score(dir: &Path, data: &Path, args: &[&str]) -> Command {
    let mut cmd = fewshot();
    cmd.env("XDG_CACHE_HOME", dir.join("cache")).arg("score").args(args).arg("--data").arg(data);
    cmd
}

/// (arch, score) rows of a scores CSV (NB201 and MobileNet architectures hold no comma).
fn rows(csv: &str) -> Vec<(String, f64)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

const NB201: [&str; 4] = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
];

#[test]
fn every_proxy_scores_nb201_on_jpegs_deterministically_and_resumes() {
    let dir = temp_dir("score-nb201");
    let data = jpeg_subset(&dir.join("cifar"), 4, 1);
    let list = dir.join("archs.txt");
    fs::write(&list, NB201.join("\n")).unwrap();
    let small = ["--space", "nb201:N=1", "--batch", "16", "--archs"];
    for proxy in PROXIES {
        let args = [&["--proxy", proxy][..], &small[..], &[list.to_str().unwrap()]].concat();
        let (first, _) = succeeds(&mut score(&dir, &data, &args));
        let scored = rows(&first);
        assert_eq!(scored.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), NB201, "{proxy}: one row per architecture, in order");
        assert!(scored.iter().all(|r| !r.1.is_nan()), "{proxy}: {first}");
        let (again, _) = succeeds(&mut score(&dir, &data, &args));
        assert_eq!(first, again, "{proxy}: the same seed gives the same scores");
        let (other_seed, _) = succeeds(&mut score(&dir, &data, &[&args[..], &["--seed", "1"]].concat()));
        assert_ne!(first, other_seed, "{proxy}: another seed, other weights");
    }
    let header = succeeds(&mut score(&dir, &data, &["--proxy", "az", "--space", "nb201:N=1", "--batch", "16", "--arch", NB201[0]])).0;
    assert!(header.starts_with("arch,score,expressivity,progressivity,trainability,complexity\n"), "{header}");

    // Resuming: the scores of a file written for two architectures are kept when four are asked
    // for, and the result equals a scoring from scratch.
    let out = dir.join("naswot.csv");
    let part = dir.join("part.txt");
    fs::write(&part, NB201[..2].join("\n")).unwrap();
    let with_output = |archs: &Path, out: &Path| {
        let (archs, out) = (archs.to_str().unwrap(), out.to_str().unwrap());
        score(&dir, &data, &["--proxy", "naswot", "--space", "nb201:N=1", "--batch", "16", "--output", out, "--archs", archs])
    };
    succeeds(&mut with_output(&part, &out));
    let (_, stderr) = succeeds(&mut with_output(&list, &out));
    assert!(stderr.contains("scoring 2 architectures with naswot (2 already done)"), "{stderr}");
    succeeds(&mut with_output(&list, &dir.join("fresh.csv")));
    assert_eq!(fs::read_to_string(&out).unwrap(), fs::read_to_string(dir.join("fresh.csv")).unwrap());
    // Other settings are refused, naming the one that differs.
    let (out_text, list_text) = (out.to_str().unwrap(), list.to_str().unwrap());
    let mut other = score(&dir, &data, &["--proxy", "naswot", "--space", "nb201:N=1", "--batch", "8", "--output", out_text, "--archs", list_text]);
    assert!(fails(&mut other).contains("holds scores with other settings (batch 16, asked for 8)"));
    // Bad input: a malformed architecture, too large a batch, an unknown proxy.
    let err = fails(&mut score(&dir, &data, &["--proxy", "snip", "--space", "nb201:N=1", "--arch", "|conv~0|"]));
    assert!(err.contains("malformed"), "{err}");
    let err = fails(&mut score(&dir, &data, &["--proxy", "snip", "--space", "nb201:N=1", "--batch", "500", "--arch", NB201[0]]));
    assert!(err.contains("needs 500 images"), "{err}");
    let err = fails(&mut score(&dir, &data, &["--proxy", "zen", "--arch", NB201[0]]));
    assert!(err.contains("naswot") && err.contains("synflow"), "{err}");
}

#[test]
fn every_proxy_scores_mobilenet_at_a_small_resolution() {
    let dir = temp_dir("score-mobilenet");
    let data = jpeg_subset(&dir.join("cifar"), 2, 1);
    let arch = ["3x3e3"; 21].join("-").replacen("3x3e3", "5x5e6", 1);
    for proxy in PROXIES {
        let args = ["--proxy", proxy, "--space", "mobilenet:classes=10", "--resolution", "32", "--batch", "8", "--arch", &arch];
        let (out, _) = succeeds(&mut score(&dir, &data, &args));
        let scored = rows(&out);
        assert_eq!(scored.len(), 1, "{out}");
        assert!(scored[0].1.is_finite(), "{proxy}: {out}");
    }
}

#[test]
fn a_run_ranks_and_searches_with_an_ensemble_and_reports_every_term() {
    let dir = temp_dir("score-run");
    let data = jpeg_subset(&dir.join("cifar"), 20, 10);
    let truth = common::shared_dir().join("data/nb201/nb201.csv");
    let out = dir.join("run");
    let mut cmd = fewshot();
    cmd.env("XDG_CACHE_HOME", dir.join("cache"))
        .arg("run")
        .args(["--space", "nb201:N=1", "--epochs", "1", "--batch", "16", "--population", "4", "--generations", "1"])
        .args(["--estimator", "supernet+naswot", "--rank-archs", "12", "--valid-images", "50", "--test-images", "50"])
        .args(["--set", "eval.batch_size=25", "--set", "proxy.batch=16", "--data"])
        .arg(&data)
        .arg("--truth")
        .arg(&truth)
        .arg("--out")
        .arg(&out);
    let (stdout, _) = succeeds(&mut cmd);
    assert!(stdout.contains("supernet+naswot score"), "{stdout}");
    let rank: serde_json::Value = serde_json::from_str(&fs::read_to_string(out.join("rank.json")).unwrap()).unwrap();
    assert_eq!(rank["predictor"]["name"], "supernet+naswot");
    let names: Vec<&str> = rank["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["supernet", "naswot", "params", "flops"]);
    // The proxy's term is what `fewshot score` gives for the same architectures.
    let stored = fs::read_to_string(out.join("scores-naswot.csv")).unwrap();
    let list = dir.join("ranked.txt");
    fs::write(&list, rows(&stored).iter().map(|r| r.0.clone()).collect::<Vec<_>>().join("\n")).unwrap();
    let mut again = score(&dir, &data, &["--proxy", "naswot", "--space", "nb201:N=1", "--batch", "16", "--archs", list.to_str().unwrap()]);
    assert_eq!(rows(&succeeds(&mut again).0), rows(&stored));
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| estimator | `supernet+naswot`"), "{report}");
    assert!(out.join("scores-search-naswot.csv").exists(), "the search's proxy scores are kept");
}
