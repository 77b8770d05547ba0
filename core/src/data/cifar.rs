//! The CIFAR-10 binary layout: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{DataError, Dataset};

/// The folder holding the CIFAR-10 `.bin` files, if `root` is (or contains) one.
pub(super) fn cifar_folder(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join("data_batch_1.bin").is_file())
}

const CIFAR_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads the official CIFAR-10 binary files: (training set, test set).
pub fn load_cifar_bin(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let classes: Vec<String> = match fs::read_to_string(dir.join("batches.meta.txt")) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) => CIFAR_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    if classes.len() != 10 {
        return Err(DataError::CifarClasses { dir: dir.to_path_buf(), count: classes.len() });
    }
    let read = |names: &[String]| -> Result<Dataset, DataError> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(|source| DataError::Io { action: "read", path: path.clone(), source })?;
            if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
                return Err(DataError::CifarTruncated { path, bytes: bytes.len(), record: CIFAR_RECORD });
            }
            for (r, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
                if record[0] >= 10 {
                    return Err(DataError::CifarLabel { path, record: r, label: record[0] });
                }
                labels.push(record[0] as u32);
                pixels.extend_from_slice(&record[1..]);
            }
        }
        Ok(Dataset { pixels, labels, classes: classes.clone(), dims: [3, 32, 32] })
    };
    let train_names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    for name in train_names.iter().chain(std::iter::once(&"test_batch.bin".to_string())) {
        if !dir.join(name).is_file() {
            return Err(DataError::CifarMissing { dir: dir.to_path_buf(), name: name.clone() });
        }
    }
    Ok((read(&train_names)?, read(&["test_batch.bin".to_string()])?))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::data::{load_splits, tests::temp_dir, DataConfig};

    fn write_cifar(dir: &Path, per_file: usize) {
        for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
            let mut bytes = Vec::new();
            for r in 0..per_file {
                bytes.push((r % 10) as u8);
                bytes.extend((0..3072).map(|p| ((p + r) % 251) as u8));
            }
            fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        }
    }

    #[test]
    fn cifar_binary_files_load_and_split() {
        let dir = temp_dir("cifar");
        write_cifar(&dir, 20);
        let (train, test) = load_cifar_bin(&dir).unwrap();
        assert_eq!((train.len(), test.len()), (100, 20));
        assert_eq!(train.classes[0], "airplane");
        assert_eq!(train.labels[3], 3);
        assert_eq!(train.image(1)[0], 1, "red plane first");
        let config = DataConfig { path: Some(dir.clone()), ..Default::default() };
        let splits = load_splits(&config, [3, 32, 32], 10).unwrap();
        assert_eq!((splits.train.len(), splits.valid.len(), splits.test.len()), (50, 50, 20));
        let err = load_splits(&config, [3, 32, 32], 100).unwrap_err().to_string();
        assert!(err.contains("10 classes") && err.contains("100 outputs"), "{err}");
    }

    #[test]
    fn corrupt_cifar_files_are_clear_errors() {
        let dir = temp_dir("cifar-bad");
        write_cifar(&dir, 3);
        let path = dir.join("data_batch_3.bin");
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 100);
        fs::write(&path, &bytes).unwrap();
        let err = load_cifar_bin(&dir).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin") && err.contains("truncated"), "{err}");
        write_cifar(&dir, 3);
        let mut bytes = fs::read(dir.join("test_batch.bin")).unwrap();
        bytes[CIFAR_RECORD] = 42;
        fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        let err = load_cifar_bin(&dir).unwrap_err().to_string();
        assert!(err.contains("label 42"), "{err}");
        fs::remove_file(dir.join("data_batch_5.bin")).unwrap();
        assert!(load_cifar_bin(&dir).unwrap_err().to_string().contains("data_batch_5.bin is missing"));
    }
}
