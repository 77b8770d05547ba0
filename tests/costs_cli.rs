//! `fewshot costs` end to end: exact FLOPs and parameters equal to NAS-Bench-201's for every
//! architecture, one-architecture queries, the channel divisor, and clear errors.

mod common;

use std::collections::HashMap;

use common::{fewshot, run, shared_dir};

const ARCH_9930: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";

fn costs(args: &[&str]) -> String {
    let (out, stdout, stderr) = run(fewshot().arg("costs").args(args));
    assert!(out.status.success(), "costs {args:?} failed: {stderr}");
    stdout
}

fn fails_cleanly(args: &[&str], needle: &str) {
    let (out, stdout, stderr) = run(fewshot().args(args));
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
    assert!(stderr.contains(needle), "{args:?}: expected `{needle}` in: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn all_nb201_costs_equal_the_benchmark() {
    let csv = std::fs::read_to_string(shared_dir().join("data/nb201/nb201.csv")).expect("nb201.csv in ../shared");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (a, f, p) = (col("arch"), col("c10_flops_m"), col("c10_params_mb"));
    let truth: HashMap<String, (f64, f64)> = lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[a].to_string(), (c[f].parse().unwrap(), c[p].parse().unwrap()))
        })
        .collect();

    let out = costs(&["--space", "nb201", "--all", "--format", "csv"]);
    let mut rows = out.lines();
    assert_eq!(rows.next(), Some("arch,flops_m,params_mb"));
    let mut n = 0;
    for row in rows {
        let c: Vec<&str> = row.split(',').collect();
        let (flops, params) = truth[c[0]];
        assert!((c[1].parse::<f64>().unwrap() - flops).abs() < 1e-9, "{row}");
        assert!((c[2].parse::<f64>().unwrap() - params).abs() < 1e-9, "{row}");
        n += 1;
    }
    assert_eq!(n, 15_625);
}

#[test]
fn one_architecture_in_every_format() {
    assert_eq!(costs(&["--arch", ARCH_9930]), format!("arch,flops_m,params_mb\n{ARCH_9930},184.73025,1.288506\n"));
    let json: serde_json::Value = serde_json::from_str(&costs(&["--arch", ARCH_9930, "--format", "json"])).unwrap();
    assert_eq!(json[0]["flops_m"], 184.73025);
    assert_eq!(json[0]["params_mb"], 1.288506);
    let table = costs(&["--arch", ARCH_9930, "--format", "table"]);
    assert!(table.starts_with("arch") && table.contains("184.73025"), "{table}");

    let mobilenet = ["7x7e6"; 21].join("-");
    let json: serde_json::Value =
        serde_json::from_str(&costs(&["--space", "mobilenet", "--arch", &mobilenet, "--format", "json"])).unwrap();
    assert_eq!(json[0]["flops_m"].as_f64().unwrap().round(), 693.0);
}

#[test]
fn the_channel_divisor_gives_the_narrow_network() {
    let half = costs(&["--arch", ARCH_9930, "--channel-divisor", "2"]);
    let c8 = costs(&["--space", "nb201:C=8", "--arch", ARCH_9930]);
    assert_eq!(half, c8);
    assert_ne!(half, costs(&["--arch", ARCH_9930]));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    fails_cleanly(&["costs", "--arch", "|bogus~0|"], "malformed NB201 architecture");
    fails_cleanly(&["costs", "--space", "mobilenet", "--arch", "3x3e3-identity"], "expected 21");
    let first_identity = std::iter::once("identity").chain(["3x3e3"; 20]).collect::<Vec<_>>().join("-");
    fails_cleanly(&["costs", "--space", "mobilenet", "--arch", &first_identity], "cannot be `identity`");
    fails_cleanly(&["costs", "--space", "mobilenet", "--all"], "--all lists at most");
    fails_cleanly(&["costs", "--arch", ARCH_9930, "--channel-divisor", "0"], "positive");
    fails_cleanly(&["costs"], "--all");
    fails_cleanly(&["costs", "--all", "--arch", ARCH_9930], "cannot be used with");
}
