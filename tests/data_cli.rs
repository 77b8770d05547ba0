//! Data on disk through the CLI: an ImageFolder subset of ../shared's CIFAR-10 JPEGs, and CIFAR-10
//! binary batches written by the test, which must train exactly like the same images written as
//! PNG ImageFolder trees. Each test decodes into its own cache folder (`XDG_CACHE_HOME`).

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use common::{fewshot, jpeg_subset, run, temp_dir, workspace_root, CLASSES};

/// Bytes of one CIFAR-10 binary record: the label, then the R, G and B planes of 32×32.
const RECORD: usize = 1 + 3 * 32 * 32;

/// Options of a tiny training on a one-cell-per-stage NB201 network.
const TINY: &[&str] = &["--space", "nb201:N=1", "--epochs", "1", "--batch", "16", "--population", "4", "--generations", "1", "--estimator", "supernet"];

/// `fewshot` decoding into the cache folder `cache`.
fn fewshot_cached(cache: &Path) -> Command {
    let mut cmd = fewshot();
    cmd.env("XDG_CACHE_HOME", cache);
    cmd
}

fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success() && !stderr.contains("panicked"), "failed: {stdout}\n{stderr}");
    stdout
}

fn fails(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "expected exit 2: {stdout}\n{stderr}");
    assert!(!stderr.contains("panicked") && stderr.lines().any(|l| l.starts_with("error: ")), "{stderr}");
    stderr
}

/// Images of the training epochs of a run, from metrics.jsonl.
fn images_per_epoch(dir: &Path) -> Vec<u64> {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["images"].as_u64().unwrap())
        .collect()
}

/// The `accuracy` column of CSV text (`eval`'s output, search.csv).
fn accuracies(csv: &str) -> Vec<f64> {
    let mut lines = csv.lines();
    let column = lines.next().unwrap().split(',').position(|h| h == "accuracy").expect("an accuracy column");
    lines.map(|l| l.split(',').nth(column).unwrap().parse().unwrap()).collect()
}

#[test]
fn an_image_folder_of_cifar_jpegs_runs_end_to_end_through_the_cache() {
    let dir = temp_dir("image-folder");
    let data = jpeg_subset(&dir.join("cifar"), 20, 10);
    let cache = dir.join("cache");
    let out = dir.join("run");
    let mut cmd = fewshot_cached(&cache);
    cmd.arg("run").args(TINY).args(["--valid-images", "100", "--test-images", "100", "--set", "eval.batch_size=20", "--data"]).arg(&data).arg("--out").arg(&out);
    succeeds(&mut cmd);
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains(&format!("path = {:?}", data.display().to_string())), "{config}");
    // The supernets train on a stratified half of the 200 training images: 10 of each class;
    // the other half (100 images) scores the search, in batches of 20, so in whole percents.
    assert_eq!(images_per_epoch(&out), [100]);
    let search = fs::read_to_string(out.join("search.csv")).unwrap();
    let scored = accuracies(&search);
    assert_eq!(scored.len(), 8);
    assert!(scored.iter().all(|a| a.fract() == 0.0 && (0.0..=100.0).contains(a)), "{search}");

    // Decoded images are cached on disk; estimates from the cache equal those of a fresh decode.
    let cached: Vec<PathBuf> = fs::read_dir(cache.join("fewshot")).expect("a cache folder").map(|e| e.unwrap().path()).collect();
    assert!(!cached.is_empty(), "nothing cached");
    let eval = |cmd: &mut Command| {
        cmd.args(["eval", "--split", "test", "--archs"]).arg(out.join("search.csv")).arg("--run").arg(&out);
        succeeds(cmd)
    };
    let from_cache = eval(&mut fewshot_cached(&cache));
    let decoded = eval(&mut fewshot_cached(&dir.join("empty-cache")));
    assert_eq!(from_cache, decoded);
    assert!(accuracies(&decoded).iter().all(|a| a.fract() == 0.0), "100 test images: {decoded}");

    // Broken trees are clear errors: a truncated image, an image of another size, class folders
    // that differ between train/ and test/.
    let broken = |name: &str, damage: &dyn Fn(&Path)| {
        let data = jpeg_subset(&dir.join(name), 2, 1);
        damage(&data);
        let mut cmd = fewshot_cached(&cache);
        cmd.arg("train").args(TINY).args(["--valid-images", "10", "--test-images", "10", "--data"]).arg(&data).arg("--out").arg(dir.join(name).join("run"));
        fails(&mut cmd)
    };
    let err = broken("truncated", &|data| {
        let image = data.join("train/cat/0001.jpg");
        let bytes = fs::read(&image).unwrap();
        fs::write(&image, &bytes[..bytes.len() / 3]).unwrap();
    });
    assert!(err.contains("0001.jpg"), "{err}");
    // An image of another size: the tree is stored at its smallest short side, which the
    // network does not take without --resolution.
    let err = broken("small", &|data| write_png(&data.join("test/dog/small.png"), 16, &[7; 3 * 16 * 16]));
    assert!(err.contains("test holds 3×16×16 images") && err.contains("3×32×32"), "{err}");
    let mut cmd = fewshot_cached(&cache);
    cmd.arg("train").args(TINY).args(["--valid-images", "10", "--test-images", "10", "--resolution", "16", "--data"]);
    succeeds(cmd.arg(dir.join("small")).arg("--out").arg(dir.join("small").join("run16")));
    let err = broken("classes", &|data| fs::remove_dir_all(data.join("test/truck")).unwrap());
    assert!(err.contains("truck"), "{err}");
}

/// Writes a `size`×`size` RGB PNG of interleaved pixels.
fn write_png(path: &Path, size: u32, rgb: &[u8]) {
    let file = fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), size, size);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(rgb).unwrap();
}

/// `count` generated images per class in label order, as (label, planar R, G, B pixels). The
/// class shows in the red plane's level, the green plane is noise, blue a horizontal ramp, so
/// that mixing planes up or mislabelling changes what is learned.
fn generated_images(count: usize, seed: u64) -> Vec<(u8, Vec<u8>)> {
    let mut state = seed;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 56) as u8
    };
    let mut images = Vec::new();
    for label in 0..10u8 {
        for _ in 0..count {
            let mut planes = vec![0u8; 3 * 1024];
            for p in 0..1024 {
                planes[p] = label * 25 + noise() / 16;
                planes[1024 + p] = noise();
                planes[2048 + p] = (p % 32 * 8) as u8;
            }
            images.push((label, planes));
        }
    }
    images
}

/// Writes `train` and `test` images as CIFAR-10 binary batches (the training images spread over
/// the five data batches) into `bin`, and as PNG ImageFolder trees into `folder`.
fn write_both_formats(bin: &Path, folder: &Path, train: &[(u8, Vec<u8>)], test: &[(u8, Vec<u8>)]) {
    fs::create_dir_all(bin).unwrap();
    let records = |images: &[(u8, Vec<u8>)]| -> Vec<u8> {
        images.iter().flat_map(|(label, planes)| std::iter::once(*label).chain(planes.iter().copied())).collect()
    };
    for (i, chunk) in train.chunks(train.len().div_ceil(5)).enumerate() {
        fs::write(bin.join(format!("data_batch_{}.bin", i + 1)), records(chunk)).unwrap();
    }
    fs::write(bin.join("test_batch.bin"), records(test)).unwrap();
    for (part, images) in [("train", train), ("test", test)] {
        for (i, (label, planes)) in images.iter().enumerate() {
            let dir = folder.join(part).join(CLASSES[*label as usize]);
            fs::create_dir_all(&dir).unwrap();
            let interleaved: Vec<u8> = (0..1024).flat_map(|p| [planes[p], planes[1024 + p], planes[2048 + p]]).collect();
            write_png(&dir.join(format!("{i:04}.png")), 32, &interleaved);
        }
    }
}

/// The tensor bytes of a checkpoint (a safetensors file: an 8-byte little-endian header length,
/// the JSON header, then the data).
fn checkpoint_data(dir: &Path) -> Vec<u8> {
    let bytes = fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + len..].to_vec()
}

#[test]
fn cifar_binary_batches_train_exactly_like_the_same_images_as_png_folders() {
    let dir = temp_dir("cifar-bin");
    let (bin, folder, cache) = (dir.join("bin"), dir.join("folder"), dir.join("cache"));
    let (train, test) = (generated_images(10, 1), generated_images(3, 2));
    write_both_formats(&bin, &folder, &train, &test);
    assert_eq!(fs::metadata(bin.join("data_batch_1.bin")).unwrap().len() as usize, 20 * RECORD);

    let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    let train_and_eval = |data: &Path, out: &Path| {
        let mut cmd = fewshot_cached(&cache);
        cmd.arg("train").args(TINY).args(["--valid-images", "50", "--test-images", "30", "--set", "eval.batch_size=10", "--data"]).arg(data).arg("--out").arg(out);
        succeeds(&mut cmd);
        let mut cmd = fewshot_cached(&cache);
        cmd.args(["eval", "--split", "test", "--arch", arch, "--run"]).arg(out);
        succeeds(&mut cmd)
    };
    let from_bin = train_and_eval(&bin, &dir.join("run-bin"));
    let from_folder = train_and_eval(&folder, &dir.join("run-folder"));
    // Half of each class's 10 training images train the supernets.
    assert_eq!(images_per_epoch(&dir.join("run-bin")), [50]);
    assert!(checkpoint_data(&dir.join("run-bin")) == checkpoint_data(&dir.join("run-folder")), "the two formats trained differently");
    assert_eq!(from_bin, from_folder);
    let accuracy = accuracies(&from_bin)[0];
    assert!((accuracy * 30.0 / 100.0 - (accuracy * 30.0 / 100.0).round()).abs() < 1e-9, "30 test images: {accuracy}");

    // Malformed batches are clear errors naming the file.
    let train_on = |data: &Path| {
        let mut cmd = fewshot_cached(&cache);
        cmd.arg("train").args(TINY).args(["--valid-images", "50", "--test-images", "30", "--data"]).arg(data).arg("--out").arg(dir.join("broken-run"));
        fails(&mut cmd)
    };
    let batch = bin.join("data_batch_3.bin");
    let good = fs::read(&batch).unwrap();
    fs::write(&batch, &good[..good.len() - 1]).unwrap();
    let err = train_on(&bin);
    assert!(err.contains("data_batch_3.bin") && err.contains(&RECORD.to_string()), "{err}");
    let mut bad_label = good.clone();
    bad_label[RECORD] = 10;
    fs::write(&batch, bad_label).unwrap();
    let err = train_on(&bin);
    assert!(err.contains("data_batch_3.bin") && err.contains("label 10"), "{err}");
    fs::write(&batch, good).unwrap();
    fs::remove_file(bin.join("test_batch.bin")).unwrap();
    let err = train_on(&bin);
    assert!(err.contains("test_batch.bin"), "{err}");
}

#[test]
fn a_data_resolution_resizes_the_jpegs_and_the_space_follows() {
    let dir = temp_dir("resolution");
    let data = jpeg_subset(&dir.join("cifar"), 20, 10);
    let cache = dir.join("cache");
    let out = dir.join("run");
    let mut cmd = fewshot_cached(&cache);
    cmd.arg("train").args(TINY).args(["--resolution", "16", "--valid-images", "100", "--test-images", "100", "--data"]).arg(&data).arg("--out").arg(&out);
    succeeds(&mut cmd);
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("resolution = 16"), "{config}");
    assert_eq!(images_per_epoch(&out), [100]);
    // The saved configuration resolves the same 16×16 space again, so the run evaluates.
    let mut eval = fewshot_cached(&cache);
    eval.args(["eval", "--split", "test", "--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "--run"]).arg(&out);
    let estimate = succeeds(&mut eval);
    assert_eq!(accuracies(&estimate).len(), 1, "{estimate}");

    // A space that sets another resolution is refused, naming both.
    let mut cmd = fewshot_cached(&cache);
    cmd.arg("train").args(&TINY[2..]).args(["--space", "nb201:N=1,resolution=32", "--resolution", "16", "--valid-images", "10", "--test-images", "10", "--data"]).arg(&data).arg("--out").arg(dir.join("mismatch"));
    let err = fails(&mut cmd);
    assert!(err.contains("data resolution is 16×16") && err.contains("32×32"), "{err}");
}

#[test]
fn the_cpu_protocol_example_trains() {
    // examples/cpu-protocol.toml, run from the checkout as its comment says (its paths are
    // relative to it), on a small subset of the JPEGs and one short epoch.
    let dir = temp_dir("cpu-protocol");
    let data = jpeg_subset(&dir.join("cifar"), 20, 4);
    let out = dir.join("run");
    let mut cmd = fewshot_cached(&dir.join("cache"));
    cmd.current_dir(workspace_root()).args(["train", "--config", "examples/cpu-protocol.toml"]).args(["--epochs", "1", "--train-images", "50", "--valid-images", "20", "--test-images", "20", "--data"]).arg(&data).arg("--out").arg(&out);
    succeeds(&mut cmd);
    let saved = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("resolution = 16") && saved.contains("nb201:N=1"), "{saved}");
    assert_eq!(images_per_epoch(&out), [50]);
}
