//! The same images give the same run and the same estimates from any source: a class-sorted
//! ImageFolder tree of the shared CIFAR-10 JPEGs (read class folder by class folder) and the same
//! decoded images, shuffled, in a CIFAR-10 binary folder. Before evaluation batches were
//! class-mixed, the ImageFolder run evaluated batches of one or two classes and the two
//! disagreed.

mod common;

use std::{fs, path::Path};

use common::{fewshot, run, shared_dir, temp_dir};
use fewshot_core::data::load_image_folder;

/// Copies the first `per_class` JPEGs of every class of `part` (train or test).
fn copy_jpegs(part: &str, per_class: usize, to: &Path) {
    let from = shared_dir().join("data/cifar10-jpeg").join(part);
    let mut classes: Vec<_> = fs::read_dir(&from).unwrap().map(|e| e.unwrap().path()).collect();
    classes.sort();
    for class in classes {
        let dest = to.join(part).join(class.file_name().unwrap());
        fs::create_dir_all(&dest).unwrap();
        let mut files: Vec<_> = fs::read_dir(&class).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.into_iter().take(per_class) {
            fs::copy(&file, dest.join(file.file_name().unwrap())).unwrap();
        }
    }
}

/// A seeded permutation of `0..n` (a small LCG; the test needs no statistical quality).
fn permutation(n: usize, mut state: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    order
}

/// 3073-byte CIFAR records (label, then the R, G, B planes) of the images of an ImageFolder
/// part, decoded by fewshot's own loader, in a shuffled order.
fn shuffled_records(folder: &Path, seed: u64) -> Vec<Vec<u8>> {
    let data = load_image_folder(folder).unwrap();
    assert_eq!(data.dims, [3, 32, 32]);
    permutation(data.len(), seed)
        .into_iter()
        .map(|i| {
            let mut record = vec![data.labels[i] as u8];
            record.extend_from_slice(data.image(i));
            record
        })
        .collect()
}

/// The images of an ImageFolder tree as a shuffled CIFAR-10 binary folder.
fn write_cifar_bin(folder: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let train = shuffled_records(&folder.join("train"), 7);
    let per_file = train.len().div_ceil(5);
    for (i, chunk) in train.chunks(per_file).enumerate() {
        fs::write(to.join(format!("data_batch_{}.bin", i + 1)), chunk.concat()).unwrap();
    }
    fs::write(to.join("test_batch.bin"), shuffled_records(&folder.join("test"), 8).concat()).unwrap();
}

fn succeeds(args: &[&str], data: &Path, out: &Path) -> String {
    let (status, stdout, stderr) = run(fewshot().args(args).arg("--data").arg(data).arg("--out").arg(out));
    assert!(status.status.success(), "failed: {stdout}\n{stderr}");
    stdout
}

#[test]
fn a_class_sorted_image_folder_and_a_shuffled_cifar_binary_give_the_same_estimates() {
    let dir = temp_dir("data-order");
    let (folder, binary) = (dir.join("jpeg"), dir.join("bin"));
    copy_jpegs("train", 24, &folder);
    copy_jpegs("test", 10, &folder);
    write_cifar_bin(&folder, &binary);

    let train = [
        "train", "--space", "nb201:N=1", "--epochs", "2", "--batch", "24", "--seed", "3", "--valid-images", "100", "--test-images", "100", "--set", "eval.batch_size=50",
    ];
    succeeds(&train, &folder, &dir.join("run-jpeg"));
    succeeds(&train, &binary, &dir.join("run-bin"));
    let archs = dir.join("archs.txt");
    fs::write(
        &archs,
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n\
         |nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|\n\
         |avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|\n",
    )
    .unwrap();
    let estimates = |run_dir: &Path, split: &str| {
        let (out, stdout, stderr) =
            run(fewshot().args(["eval", "--split", split, "--archs"]).arg(&archs).arg("--run").arg(run_dir));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    for split in ["valid", "test"] {
        let (jpeg, bin) = (estimates(&dir.join("run-jpeg"), split), estimates(&dir.join("run-bin"), split));
        assert_eq!(jpeg.lines().count(), 4, "{jpeg}");
        // Tolerance: none. The order is drawn from the images themselves, so both runs train
        // on the same batches and evaluate the same batches, bit for bit.
        assert_eq!(jpeg, bin, "{split} estimates differ between the two sources of the same images");
    }
    let losses = |run_dir: &Path| -> Vec<(String, String)> {
        let text = fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                (record["loss"].to_string(), record["accuracy"].to_string())
            })
            .collect()
    };
    assert_eq!(losses(&dir.join("run-jpeg")), losses(&dir.join("run-bin")), "identical training");
    let _ = fs::remove_dir_all(&dir);
}
