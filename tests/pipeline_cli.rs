//! End-to-end tests of the training pipeline commands: `train`, `eval`, `search`, `run` and
//! `compare`, on tiny budgets (a one-cell-per-stage NB201 network, a few dozen built-in images).
//! Beyond "it ran", they check that what the stages write agrees: the resolved configuration,
//! metrics.jsonl, search.csv, best.json, predictions.csv, rank.json and report.md, and what
//! `eval`, `rank` and `costs` say about the same architectures.

mod common;

use std::{collections::HashMap, fs, path::Path, process::Command};

use common::{fewshot, run, shared_dir, temp_dir};

/// Options that make every stage take a second or two.
const TINY: &[&str] = &[
    "--estimator",
    "supernet",
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

/// Images of the validation split and of the test split under [`TINY`]: every accuracy estimate
/// is a whole number of them.
const EVAL_IMAGES: f64 = 32.0;

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

fn eval(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = fewshot();
    cmd.arg("eval").arg("--run").arg(dir).args(extra);
    cmd
}

/// CSV text whose fields hold no comma (true of NB201 architectures): one map per row.
fn parse_csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split(',').collect();
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{line}");
            header.iter().zip(fields).map(|(h, f)| (h.to_string(), f.to_string())).collect()
        })
        .collect()
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    parse_csv(&fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn num(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column].parse().unwrap_or_else(|e| panic!("{column} `{}`: {e}", row[column]))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The records of a run's metrics.jsonl.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The value at `key` (`section.name`) of a run's config.toml, written as TOML.
fn config_value(dir: &Path, key: &str) -> String {
    let config: toml::Value = toml::from_str(&fs::read_to_string(dir.join("config.toml")).unwrap()).unwrap();
    key.split('.').fold(&config, |v, k| v.get(k).unwrap_or_else(|| panic!("config.toml has no {key}"))).to_string()
}

/// Asserts that `accuracy` (%) is a whole number of correct images out of [`EVAL_IMAGES`].
fn assert_whole_images(accuracy: f64) {
    let correct = accuracy * EVAL_IMAGES / 100.0;
    assert!((correct - correct.round()).abs() < 1e-9 && (0.0..=EVAL_IMAGES).contains(&correct), "{accuracy}% is no k/{EVAL_IMAGES} images");
}

/// The header and body rows of the first table after `heading` in a markdown text, cells
/// trimmed and `\|` unescaped.
fn markdown_table(text: &str, heading: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let at = text.find(heading).unwrap_or_else(|| panic!("no `{heading}` in:\n{text}"));
    let cells = |line: &str| -> Vec<String> {
        let parts: Vec<String> = line.replace("\\|", "\u{1}").split('|').map(|c| c.trim().replace('\u{1}', "|")).collect();
        parts[1..parts.len() - 1].to_vec()
    };
    let mut lines = text[at..].lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let header = cells(lines.next().expect("a table"));
    (header, lines.skip(1).map(cells).collect())
}

/// The accuracies `eval` prints, by architecture, in order.
fn estimates(stdout: &str) -> Vec<(String, f64)> {
    parse_csv(stdout).iter().map(|r| (r["arch"].clone(), num(r, "accuracy"))).collect()
}

/// Steps each supernet received over the run, from metrics.jsonl.
fn steps_per_supernet(dir: &Path) -> Vec<u64> {
    let mut totals: Vec<u64> = Vec::new();
    for record in metrics(dir) {
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
    let rows = parse_csv(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["arch"], arch);
    assert_eq!(rows[0]["subspace"], "1", "two conv edges on the longest path: subspace `count 2`");
    assert_whole_images(num(&rows[0], "accuracy"));

    let none = "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|";
    let list = dir.join("archs.txt");
    fs::write(&list, format!("# two architectures\n{arch}\n\n{none}\n")).unwrap();
    let csv = dir.join("out.csv");
    succeeds(fewshot().args(["eval", "--split", "test", "--archs"]).arg(&list).arg("--output").arg(&csv).arg("--run").arg(&run_dir));
    let written = fs::read_to_string(&csv).unwrap();
    let rows = parse_csv(&written);
    let listed: Vec<(&str, &str)> = rows.iter().map(|r| (r["arch"].as_str(), r["subspace"].as_str())).collect();
    assert_eq!(listed, [(arch, "1"), (none, "0")], "in file order; no convolution: `count 0-1`");
    rows.iter().for_each(|r| assert_whole_images(num(r, "accuracy")));
    // --output holds what stdout shows, and evaluation is deterministic.
    assert_eq!(written, succeeds(fewshot().args(["eval", "--split", "test", "--archs"]).arg(&list).arg("--run").arg(&run_dir)));
    // The first architecture alone on the validation split: as in the list.
    let on_valid = succeeds(fewshot().args(["eval", "--archs"]).arg(&list).arg("--run").arg(&run_dir));
    assert_eq!(parse_csv(&on_valid)[0], parse_csv(&out)[0]);

    // With batch statistics an estimate depends on the evaluation batch size; with BatchNorm
    // recalibrated on training batches it does not, and it differs from the plain estimate.
    let eight: Vec<String> = read_csv(&common::shared_dir().join("data/nb201/nb201.csv")).iter().take(8).map(|r| r["arch"].clone()).collect();
    fs::write(&list, eight.join("\n")).unwrap();
    let list_arg = list.to_str().unwrap();
    let accuracies = |extra: &[&str]| -> Vec<f64> {
        let out = succeeds(&mut eval(&run_dir, &[&["--archs", list_arg], extra].concat()));
        let rows = estimates(&out);
        assert_eq!(rows.iter().map(|r| &r.0).collect::<Vec<_>>(), eight.iter().collect::<Vec<_>>());
        rows.iter().map(|r| r.1).collect()
    };
    let (plain, plain_small) = (accuracies(&[]), accuracies(&["--batch", "4"]));
    let (recalibrated, recalibrated_small) = (accuracies(&["--bn-recalibrate", "2"]), accuracies(&["--bn-recalibrate", "2", "--batch", "4"]));
    assert_ne!(plain, plain_small, "batch statistics of 4 images are not those of 16");
    assert_eq!(recalibrated, recalibrated_small, "recalibrated statistics are fixed per architecture");
    assert_ne!(recalibrated, plain, "recalibration changes the estimates");
    plain.iter().chain(&recalibrated).for_each(|&a| assert_whole_images(a));
    assert_eq!(accuracies(&["--bn-recalibrate", "2"]), recalibrated, "deterministic");

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
fn run_completes_every_stage_and_its_outputs_agree() {
    let dir = temp_dir("run").join("r");
    let truth = shared_dir().join("data/nb201/nb201.csv");
    let mut cmd = fewshot();
    cmd.arg("run").args(TINY).args(["--epochs", "1", "--rank-archs", "12", "--truth"]).arg(&truth).arg("--out").arg(&dir);
    let out = succeeds(&mut cmd);
    for file in ["plots/training.svg", "plots/pareto.svg", "plots/pred_vs_truth.svg", "plots/subspace_accuracy.svg"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }

    // The resolved configuration holds what was asked, and the defaults for the rest.
    for (key, value) in [
        ("seed", "0".to_string()),
        ("space.spec", "\"nb201:N=1\"".into()),
        ("split.splitter", "\"nonlin\"".into()),
        ("data.builtin_train", "128".into()),
        ("data.builtin_test", "64".into()),
        ("data.valid_images", "32".into()),
        ("data.test_images", "32".into()),
        ("train.sampler", "\"sbs\"".into()),
        ("train.epochs", "1".into()),
        ("train.batch_size", "16".into()),
        ("eval.batch_size", "16".into()),
        ("search.population", "4".into()),
        ("search.generations", "1".into()),
        ("rank.archs", "12".into()),
        ("rank.truth", format!("{:?}", truth.display().to_string())),
    ] {
        assert_eq!(config_value(&dir, key), value, "{key}");
    }

    // Training: one epoch in batches of 16, every supernet trained at every step (sbs), and the
    // report's training table shows metrics.jsonl.
    let records = metrics(&dir);
    assert_eq!(records.len(), 1);
    let epoch = &records[0];
    assert_eq!((epoch["epoch"].as_u64(), epoch["lr"].as_f64()), (Some(1), Some(0.025)), "the first epoch runs at train.lr");
    let (steps, images) = (epoch["steps"].as_u64().unwrap(), epoch["images"].as_u64().unwrap());
    assert!((1..=64).contains(&images), "at most the training half of 128 images: {images}");
    assert_eq!(steps, images.div_ceil(16));
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    let (_, training) = markdown_table(&report, "## Training");
    let supernets = epoch["supernets"].as_array().unwrap();
    assert_eq!((training.len(), supernets.len()), (3, 3));
    for (row, s) in training.iter().zip(supernets) {
        assert_eq!(s["steps"].as_u64(), Some(steps), "sbs trains every supernet at every step");
        let cells = [steps.to_string(), format!("{:.4}", s["loss"].as_f64().unwrap()), format!("{:.2}", s["accuracy"].as_f64().unwrap())];
        assert_eq!(row[2..5], cells, "{row:?}");
    }

    // Search: population 4 for 1 + 1 generations, scored on whole validation images; best.json is
    // the arg-max of search.csv, and stdout and the report say the same.
    let search = read_csv(&dir.join("search.csv"));
    assert_eq!(search.len(), 8);
    for generation in ["0", "1"] {
        assert_eq!(search.iter().filter(|r| r["generation"] == generation).count(), 4);
    }
    search.iter().for_each(|r| assert_whole_images(num(r, "accuracy")));
    let top = search.iter().map(|r| num(r, "accuracy")).fold(f64::MIN, f64::max);
    let best = read_json(&dir.join("best.json"));
    let best_arch = best["arch"].as_str().unwrap();
    let row = search.iter().find(|r| r["arch"] == best_arch).expect("the best architecture is in search.csv");
    assert_eq!(best["accuracy"].as_f64(), Some(top), "best.json is the arg-max of search.csv");
    assert_eq!(
        (num(row, "accuracy"), row["generation"].clone(), row["subspace"].clone(), num(row, "flops_m"), num(row, "params_m")),
        (top, best["generation"].to_string(), best["subspace"].to_string(), best["flops_m"].as_f64().unwrap(), best["params_m"].as_f64().unwrap())
    );
    assert_eq!((best["scored"].as_u64(), best["strategy"].as_str()), (Some(8), Some("evolution")));
    assert!(out.starts_with(&format!("best architecture: {best_arch}\n")), "{out}");
    assert!(out.contains(&format!("supernet accuracy {top:.2}%")), "{out}");
    let (header, rows) = markdown_table(&report, "## Best architectures");
    let mut by_accuracy: Vec<f64> = search.iter().map(|r| num(r, "accuracy")).collect();
    by_accuracy.sort_by(|a, b| b.total_cmp(a));
    let reported: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    let expected: Vec<String> = by_accuracy[..5].iter().map(|a| format!("{a:.2}")).collect();
    assert_eq!(reported, expected, "the report lists the five best candidates, best first");
    assert_eq!(rows[0][1], format!("`{best_arch}`"));
    // ... with their ground truth from the truth table.
    let truth_rows = read_csv(&truth);
    let true_best = truth_rows.iter().find(|r| r["arch"] == best_arch).unwrap();
    let column = header.iter().position(|h| h == "c10_test_acc").expect("a c10_test_acc column");
    assert_eq!(rows[0][column], format!("{:.2}", num(true_best, "c10_test_acc")));

    // `eval` on the validation split gives every candidate the accuracy the search scored (a CSV
    // with an `arch` column is a valid --archs file).
    let again = parse_csv(&succeeds(&mut eval(&dir, &["--split", "valid", "--archs", dir.join("search.csv").to_str().unwrap()])));
    let searched: Vec<(&String, &String, f64)> = search.iter().map(|r| (&r["arch"], &r["subspace"], num(r, "accuracy"))).collect();
    let evaluated: Vec<(&String, &String, f64)> = again.iter().map(|r| (&r["arch"], &r["subspace"], num(r, "accuracy"))).collect();
    assert_eq!(evaluated, searched);

    // Ranking: 12 architectures of the truth table estimated on the test split, as `eval --split
    // test` estimates them; rank.json is what `fewshot rank` computes from predictions.csv.
    let predictions = read_csv(&dir.join("predictions.csv"));
    assert_eq!(predictions.len(), 12);
    for p in &predictions {
        assert!(truth_rows.iter().any(|t| t["arch"] == p["arch"]), "{} is not in the truth table", p["arch"]);
        assert_whole_images(num(p, "accuracy"));
    }
    let on_test = parse_csv(&succeeds(&mut eval(&dir, &["--split", "test", "--archs", dir.join("predictions.csv").to_str().unwrap()])));
    assert_eq!(on_test, predictions);
    let rank = read_json(&dir.join("rank.json"));
    assert_eq!(rank["predictor"]["overall"]["n"], 12);
    let mut rank_cmd = fewshot();
    rank_cmd.args(["rank", "--format", "json", "--pred"]).arg(dir.join("predictions.csv")).arg("--truth").arg(&truth);
    let recomputed: serde_json::Value = serde_json::from_str(&succeeds(&mut rank_cmd)).unwrap();
    for part in ["overall", "groups"] {
        assert_eq!(rank["predictor"][part], recomputed["predictor"][part], "predictor {part}");
    }
    assert_eq!(rank["baselines"], recomputed["baselines"]);
    let tau = rank["predictor"]["overall"]["kendall_tau_b"].as_f64().unwrap();
    assert!(out.contains(&format!("Kendall tau over 12 architectures: supernets {tau:.3}")), "{out}");
    assert!(report.contains(&format!("Overall τ-b: {tau:.4}")), "{report}");

    // The same command again finds every stage done and reports the same result; a ranking
    // interrupted after 5 predictions estimates only the other 7 and ends the same.
    let saved: Vec<(&str, Vec<u8>)> = ["best.json", "search.csv", "predictions.csv", "rank.json"].iter().map(|f| (*f, fs::read(dir.join(f)).unwrap())).collect();
    let predictions_text = fs::read_to_string(dir.join("predictions.csv")).unwrap();
    let first_five: Vec<&str> = predictions_text.lines().take(1 + 5).collect();
    fs::write(dir.join("predictions.csv"), first_five.join("\n") + "\n").unwrap();
    fs::remove_file(dir.join("rank.json")).unwrap();
    let (status, repeated, stderr) = run(&mut cmd);
    assert!(status.status.success(), "{stderr}");
    assert!(stderr.contains("estimating 7 architectures") && stderr.contains("5 already done"), "{stderr}");
    for (file, bytes) in &saved {
        assert!(fs::read(dir.join(file)).unwrap() == *bytes, "{file} changed");
    }
    assert_eq!(repeated.lines().next(), out.lines().next());

    // `search --strategy random --restart` replaces the search with the same budget.
    succeeds(fewshot().args(["search", "--strategy", "random", "--restart", "--run"]).arg(&dir));
    let random = read_csv(&dir.join("search.csv"));
    assert_eq!(random.len(), 8);
    let best = read_json(&dir.join("best.json"));
    assert_eq!(best["strategy"].as_str(), Some("random"));
    assert_eq!(best["accuracy"].as_f64(), Some(random.iter().map(|r| num(r, "accuracy")).fold(f64::MIN, f64::max)));
    assert_eq!(config_value(&dir, "search.strategy"), "\"random\"", "search options are stored in config.toml");
}

#[test]
fn a_refused_search_leaves_the_run_directory_as_it_was() {
    let dir = temp_dir("refused-search").join("run");
    let mut cmd = fewshot();
    cmd.arg("run").args(TINY).args(["--epochs", "1", "--out"]).arg(&dir);
    succeeds(&mut cmd);
    let config = fs::read_to_string(dir.join("config.toml")).unwrap();
    // Other search settings without --restart: refused, as the saved search cannot continue.
    let err = fails(fewshot().args(["search", "--generations", "2", "--run"]).arg(&dir));
    assert!(err.contains("search_state.json"), "{err}");
    assert!(err.contains("generations 1, now 2") && err.contains("--restart"), "{err}");
    assert_eq!(fs::read_to_string(dir.join("config.toml")).unwrap(), config, "config.toml changed");
    succeeds(&mut cmd);
    succeeds(fewshot().args(["run", "--resume", "--out"]).arg(&dir));
}

#[test]
fn a_run_stopped_after_training_and_resumed_ends_identical_to_an_uninterrupted_one() {
    let dir = temp_dir("run-resume");
    let truth = shared_dir().join("data/nb201/nb201.csv");
    let command = |stage: &[&str], out: &Path| {
        let mut cmd = fewshot();
        cmd.args(stage).args(TINY).args(["--epochs", "2", "--rank-archs", "6", "--truth"]).arg(&truth).arg("--out").arg(out);
        cmd
    };
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    succeeds(&mut command(&["run"], &straight));
    succeeds(&mut command(&["train", "--stop-after", "1"], &resumed));
    assert_eq!(metrics(&resumed).len(), 1);
    assert!(!resumed.join("search.csv").exists());
    succeeds(fewshot().args(["run", "--resume", "--out"]).arg(&resumed));

    // The docs promise bit-identical results on the CPU.
    for file in ["config.toml", "plan.json", "checkpoint.safetensors", "predictions.csv", "rank.json", "search_state.json", "search.csv", "best.json"] {
        assert!(fs::read(straight.join(file)).unwrap() == fs::read(resumed.join(file)).unwrap(), "{file} differs");
    }
    // metrics.jsonl too, but for the timings.
    let untimed = |dir: &Path| -> Vec<serde_json::Value> {
        let mut records = metrics(dir);
        for r in &mut records {
            let r = r.as_object_mut().unwrap();
            assert!(r.remove("seconds").is_some() && r.remove("images_per_s").is_some());
        }
        records
    };
    assert_eq!(untimed(&resumed), untimed(&straight));
    assert_eq!(untimed(&resumed).len(), 2);
}

#[test]
fn search_limits_and_recalibration_take_effect() {
    let dir = temp_dir("constraints").join("run");
    succeeds(&mut train(&dir, &["--epochs", "1"]));
    // Exact full-width costs of every architecture of the space.
    let costs: HashMap<String, (f64, f64)> = parse_csv(&succeeds(fewshot().args(["costs", "--all", "--space", "nb201:N=1"])))
        .iter()
        .map(|r| (r["arch"].clone(), (num(r, "flops_m"), num(r, "params_mb"))))
        .collect();
    assert_eq!(costs.len(), 15_625);
    // Lower quartiles: a search that ignored a limit would break it with 3 of 4 random candidates.
    let quartile = |cost: fn(&(f64, f64)) -> f64| {
        let mut values: Vec<f64> = costs.values().map(cost).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 4]
    };
    let (flops_max, params_max) = (quartile(|c| c.0), quartile(|c| c.1));

    succeeds(fewshot().args(["search", "--flops-max", &flops_max.to_string(), "--run"]).arg(&dir));
    assert_eq!(config_value(&dir, "search.flops_max"), flops_max.to_string());
    // Options given to `search` are stored: the second search keeps the FLOPs limit too.
    succeeds(fewshot().args(["search", "--restart", "--params-max", &params_max.to_string(), "--run"]).arg(&dir));
    assert_eq!(config_value(&dir, "search.params_max"), params_max.to_string());
    let rows = read_csv(&dir.join("search.csv"));
    assert_eq!(rows.len(), 8);
    for r in &rows {
        let (flops, params) = costs[&r["arch"]];
        assert_eq!((num(r, "flops_m"), num(r, "params_m")), (flops, params), "search.csv costs are `fewshot costs`' for {}", r["arch"]);
        assert!(flops <= flops_max && params <= params_max, "{} breaks the limits: {flops} MFLOPs, {params} M params", r["arch"]);
    }
    let best = read_json(&dir.join("best.json"));
    assert!(best["flops_m"].as_f64().unwrap() <= flops_max && best["params_m"].as_f64().unwrap() <= params_max);

    // A search with BatchNorm recalibration scores candidates as `eval` does with the stored
    // setting, not as plain evaluation does.
    succeeds(fewshot().args(["search", "--restart", "--bn-recalibrate", "2", "--run"]).arg(&dir));
    assert_eq!(config_value(&dir, "eval.bn_recalibrate"), "2");
    let search_csv = dir.join("search.csv");
    let scored = estimates(&fs::read_to_string(&search_csv).unwrap());
    let archs = ["--archs", search_csv.to_str().unwrap()];
    assert_eq!(estimates(&succeeds(&mut eval(&dir, &archs))), scored);
    assert_ne!(estimates(&succeeds(&mut eval(&dir, &[&archs[..], &["--bn-recalibrate", "0"]].concat()))), scored);

    // A limit no architecture meets is a clear error.
    let err = fails(fewshot().args(["search", "--restart", "--flops-max", "1", "--run"]).arg(&dir));
    assert!(err.contains("no candidate"), "{err}");
}

/// A checkpoint's tensor shapes by name, and its tensor bytes (a safetensors file: an 8-byte
/// little-endian header length, the JSON header, then the data).
fn read_checkpoint(path: &Path) -> (HashMap<String, serde_json::Value>, Vec<u8>) {
    let bytes = fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let shapes = header.into_iter().filter(|(name, _)| name != "__metadata__").map(|(name, t)| (name, t["shape"].clone())).collect();
    (shapes, bytes[8 + len..].to_vec())
}

#[test]
fn affine_norm_and_the_iteration_schedule_train_and_are_recorded() {
    let dir = temp_dir("options");
    let runs = [("default", vec![]), ("affine", vec!["--set", "train.norm=affine"]), ("iteration", vec!["--set", "train.schedule=iteration"])];
    for (name, extra) in &runs {
        succeeds(&mut train(&dir.join(name), &[&["--epochs", "1"], &extra[..]].concat()));
    }
    let recorded = |name: &str| (config_value(&dir.join(name), "train.norm"), config_value(&dir.join(name), "train.schedule"));
    assert_eq!(recorded("default"), ("\"plain\"".into(), "\"epoch\"".into()));
    assert_eq!(recorded("affine"), ("\"affine\"".into(), "\"epoch\"".into()));
    assert_eq!(recorded("iteration"), ("\"plain\"".into(), "\"iteration\"".into()));

    // Affine BatchNorm adds a learned scale and shift per BN channel to the plain parameters.
    let checkpoint = |name: &str| read_checkpoint(&dir.join(name).join("checkpoint.safetensors"));
    let (plain, plain_data) = checkpoint("default");
    let (affine, _) = checkpoint("affine");
    assert!(plain.iter().all(|(name, shape)| affine.get(name) == Some(shape)), "affine keeps every plain parameter");
    let added: Vec<(&String, &serde_json::Value)> = affine.iter().filter(|(name, _)| !plain.contains_key(*name)).collect();
    assert!(!added.is_empty(), "affine adds parameters");
    assert!(added.iter().all(|(_, shape)| shape.as_array().unwrap().len() == 1), "per-channel vectors: {added:?}");
    let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    assert_whole_images(estimates(&succeeds(&mut eval(&dir.join("affine"), &["--arch", arch])))[0].1);

    // The per-iteration cosine decays within the epoch: the same tensors, other values.
    let (iteration, iteration_data) = checkpoint("iteration");
    assert_eq!(iteration, plain);
    assert!(iteration_data != plain_data, "schedule=iteration trained exactly like schedule=epoch");
}

#[test]
fn compare_runs_each_activation_and_tabulates_them() {
    let dir = temp_dir("compare");
    let mut cmd = fewshot();
    cmd.arg("compare").args(TINY).args(["--epochs", "1", "--activations", "relu,tanh", "--out"]).arg(&dir);
    succeeds(&mut cmd);
    for file in ["comparison.md", "comparison.svg", "relu/report.md", "tanh/report.md"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    // One row per activation, each its own run's result: the best of its search and the mean
    // last-epoch loss of its supernets.
    let rows = read_csv(&dir.join("comparison.csv"));
    assert_eq!(rows.iter().map(|r| r["activation"].as_str()).collect::<Vec<_>>(), ["relu", "tanh"]);
    for row in &rows {
        let run = dir.join(&row["activation"]);
        assert_eq!(config_value(&run, "space.activation"), format!("{:?}", row["activation"]));
        let best = read_json(&run.join("best.json"));
        assert_eq!(row["best architecture"], best["arch"].as_str().unwrap());
        assert_eq!(row["supernet acc (%)"], format!("{:.2}", best["accuracy"].as_f64().unwrap()));
        let last = metrics(&run).pop().unwrap();
        let losses: Vec<f64> = last["supernets"].as_array().unwrap().iter().map(|s| s["loss"].as_f64().unwrap()).collect();
        assert_eq!(row["final train loss"], format!("{:.4}", losses.iter().sum::<f64>() / losses.len() as f64));
    }
    let checkpoint = |a: &str| fs::read(dir.join(a).join("checkpoint.safetensors")).unwrap();
    assert!(checkpoint("relu") != checkpoint("tanh"), "the activation changes training");
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

/// Per epoch: (loss, accuracy) of every supernet, from metrics.jsonl.
fn supernet_losses(dir: &Path) -> Vec<Vec<(f64, f64)>> {
    metrics(dir)
        .iter()
        .map(|r| {
            r["supernets"].as_array().unwrap().iter().map(|s| (s["loss"].as_f64().unwrap(), s["accuracy"].as_f64().unwrap())).collect()
        })
        .collect()
}

#[test]
fn mobilenet_supernets_train_on_the_cpu() {
    // MobileNet's depthwise convolutions once deadlocked the first backward pass.
    let dir = temp_dir("mobilenet").join("run");
    let mut cmd = fewshot();
    cmd.args(["train", "--space", "mobilenet:resolution=32,classes=10", "--epochs", "1", "--batch", "8"])
        .args(["--set", "data.builtin_train=64", "--set", "data.builtin_test=16", "--valid-images", "16", "--test-images", "16"])
        .arg("--out")
        .arg(&dir);
    succeeds(&mut cmd);
    let epochs = supernet_losses(&dir);
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0].len(), 6, "the paper's K = 6 subspaces");
    assert!(epochs[0].iter().all(|(loss, _)| loss.is_finite() && *loss > 0.5), "{epochs:?}");
    assert_eq!(metrics(&dir)[0]["steps"].as_u64(), Some(4), "32 training images / batch 8");
}

#[test]
fn the_reference_device_trains_like_the_cpu_kernels() {
    // `--device reference` runs the generic kernels (the GPU's code path) on the CPU.
    let dir = temp_dir("reference");
    let train_on = |device: &str| {
        let out = dir.join(device);
        succeeds(&mut train(&out, &["--epochs", "1", "--device", device]));
        supernet_losses(&out)
    };
    let (cpu, reference) = (train_on("cpu"), train_on("reference"));
    assert_eq!(cpu.len(), 1);
    for (a, b) in cpu.iter().flatten().zip(reference.iter().flatten()) {
        assert!((a.0 - b.0).abs() < 1e-3 * a.0, "losses differ: cpu {a:?}, reference {b:?}");
    }
}
