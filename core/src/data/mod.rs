//! Image datasets: loading, the NB201 split protocol, augmentation and batches.
//!
//! ## Sources
//! - **CIFAR-10 binary layout**: a folder with `data_batch_1.bin` … `data_batch_5.bin` and
//!   `test_batch.bin` (or a `cifar-10-batches-bin` folder holding them), 3073-byte records
//!   (label byte, then the red, green and blue 32×32 planes). Class names come from
//!   `batches.meta.txt` when present.
//! - **ImageFolder**: `train/<class>/*.jpg|jpeg|png` and `test/<class>/…` with the same class
//!   folders; classes are the sorted folder names. Images may have any size: a tree whose
//!   images differ in size is stored as every image's centre square (its short side),
//!   area-averaged to the tree's smallest short side (the evaluation transform, resize and
//!   centre crop). Images are decoded once, in parallel, and
//!   cached: in memory for the process, and on disk in a compact file keyed by every image's
//!   path, size and modification time (under `$XDG_CACHE_HOME/fewshot`, `~/.cache/fewshot`, or
//!   the configured folder), so the data folder itself may be read-only.
//! - **Built-in**: without a path, a generated dataset of 10 classes of coloured patterns with
//!   noise ([`builtin`]): deterministic, learnable, and available offline.
//!
//! ## Resolution
//! [`DataConfig::resolution`] resizes every image on load by area averaging (see
//! [`Dataset::resized`]), for reduced-fidelity supernets.
//!
//! ## Protocol (NAS-Bench-201)
//! The training set is split into two class-stratified halves with a seeded shuffle: the first
//! trains the supernets, the second is the validation set; the test set is held out. Optional
//! stratified subsets shrink each part (e.g. 512 training images for a quick run).
//!
//! ## Order
//! Every part comes in one fixed, seeded, class-mixed order ([`Dataset::mixed_order`]) drawn
//! from the images themselves (a hash of label and pixels), never from the order the source
//! stores them in: an ImageFolder tree is read class folder by class folder, and evaluation
//! batches in that order would each hold one class, which batch-statistics BatchNorm
//! normalises with that class's own statistics. The same images give the same splits, the same
//! batches and the same estimates from any source.
//!
//! ## Augmentation
//! Random crop with 4-pixel zero padding and a random horizontal flip (NB201), or the
//! ImageNet-style random resized crop, flip and colour jitter (MobileNet; see [`Augment`]),
//! then per-channel normalisation (CIFAR means and standard deviations). The augmentation of
//! sample `i` in epoch `e` depends only on (seed, e, i), so runs and resumed runs see
//! identical batches.
//! Batches are assembled on a prefetch thread while the previous step computes.

mod augment;
mod batches;
mod cache;
mod cifar;
mod image_folder;
mod patterns;
mod resize;

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::util::{
    hash::{mix64, Fnv1a},
    rng::Rng,
};

pub use augment::Augment;
pub use batches::{batch_indices, epoch_order, make_batch, Batch, Prefetch, CIFAR_MEAN, CIFAR_STD};
pub use cifar::load_cifar_bin;
pub use image_folder::load_image_folder;
pub use patterns::builtin;

use cache::load_image_folder_cached;
use cifar::cifar_folder;
use image_folder::tree_key;

/// Why images could not be loaded, or the protocol not applied to them.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was tried: `read`, `list`, `resolve`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The configured data path does not exist.
    #[error("data path {} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    /// A path that is neither a CIFAR-10 binary folder nor an ImageFolder tree.
    #[error(
        "{} is neither a CIFAR-10 binary folder (data_batch_1.bin …) nor an ImageFolder tree (train/<class>/…)",
        .0.display()
    )]
    UnknownLayout(PathBuf),
    /// A data set with another number of classes than the network has outputs.
    #[error(
        "{origin} has {found} classes, but the search space's network has {expected} outputs (set the space's classes parameter)"
    )]
    Classes {
        /// The data path, or `the built-in dataset`.
        origin: String,
        /// Classes of the data.
        found: usize,
        /// Outputs of the network.
        expected: usize,
    },
    /// A data resolution other than the space's input resolution.
    #[error(
        "the data resolution is {resolution}×{resolution} but the search space takes {}×{} images: \
         leave the space's resolution unset (it follows the data) or set both alike",
        expected[1], expected[2]
    )]
    Resolution {
        /// The configured data resolution.
        resolution: usize,
        /// `[C, H, W]` the network takes.
        expected: [usize; 3],
    },
    /// Images of another size than the network takes.
    #[error(
        "{origin} holds {}×{}×{} images, but the search space expects {}×{}×{} (channels×height×width)",
        found[0], found[1], found[2], expected[0], expected[1], expected[2]
    )]
    Dims {
        /// The data path, or `the built-in dataset`.
        origin: String,
        /// `[C, H, W]` of the images.
        found: [usize; 3],
        /// `[C, H, W]` the network takes.
        expected: [usize; 3],
    },
    /// A part of the protocol with fewer than 2 images.
    #[error("the {part} set of {origin} has {count} images; at least 2 are needed")]
    TooFew {
        /// `training`, `validation` or `test`.
        part: &'static str,
        /// The data path, or `the built-in dataset`.
        origin: String,
        /// Its images.
        count: usize,
    },
    /// A subset larger than the set.
    #[error("asked for {count} {purpose} images, but only {available} are available")]
    SubsetTooLarge {
        /// Images asked for.
        count: usize,
        /// What they are for (`training`, `validation`, `test`).
        purpose: String,
        /// Images in the set.
        available: usize,
    },
    /// A CIFAR-10 folder that lacks one of its files.
    #[error("{}: {name} is missing", dir.display())]
    CifarMissing {
        /// The folder.
        dir: PathBuf,
        /// The missing file.
        name: String,
    },
    /// A `batches.meta.txt` that does not name 10 classes.
    #[error("{}: batches.meta.txt names {count} classes, CIFAR-10 has 10", dir.display())]
    CifarClasses {
        /// The folder.
        dir: PathBuf,
        /// Classes named.
        count: usize,
    },
    /// A CIFAR-10 batch file of the wrong size.
    #[error(
        "{} is truncated or not a CIFAR-10 batch: {bytes} bytes is not a multiple of the {record}-byte record",
        path.display()
    )]
    CifarTruncated {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: usize,
        /// The size of one record.
        record: usize,
    },
    /// A CIFAR-10 record with a label outside the 10 classes.
    #[error("{} record {record}: label {label} is not a CIFAR-10 class", path.display())]
    CifarLabel {
        /// The file.
        path: PathBuf,
        /// The record's index.
        record: usize,
        /// Its label.
        label: u8,
    },
    /// An ImageFolder part (`train/`, `test/`) that is missing.
    #[error("{} is missing (an ImageFolder tree needs train/ and test/)", .0.display())]
    FolderMissing(PathBuf),
    /// An ImageFolder part without class folders.
    #[error("{} has no class folders", .0.display())]
    NoClasses(PathBuf),
    /// An ImageFolder part without images.
    #[error("{} holds no .jpg or .png images", .0.display())]
    NoImages(PathBuf),
    /// `train/` and `test/` with different class folders.
    #[error("{}: the class folders of train/ ({}) and test/ ({}) differ", root.display(), train.join(", "), test.join(", "))]
    FolderClasses {
        /// The ImageFolder root.
        root: PathBuf,
        /// Classes of `train/`.
        train: Vec<String>,
        /// Classes of `test/`.
        test: Vec<String>,
    },
    /// An image that could not be decoded.
    #[error("cannot decode {}: {reason}", path.display())]
    Decode {
        /// The image.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Sizes the built-in dataset cannot make.
    #[error(
        "the built-in dataset makes RGB images of at least 4×4 pixels; the space expects {}×{}×{}",
        .0[0], .0[1], .0[2]
    )]
    BuiltinDims([usize; 3]),
    /// The prefetch thread could not be started.
    #[error("cannot start the data prefetch thread: {0}")]
    Prefetch(#[source] io::Error),
}

/// Images held in memory: `u8` pixels, channel-planar (`[C, H, W]` per image), and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Pixels of all images, image after image.
    pub pixels: Vec<u8>,
    /// Label of every image (`< classes.len()`).
    pub labels: Vec<u32>,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// `[channels, height, width]` of every image.
    pub dims: [usize; 3],
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True without images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_size(&self) -> usize {
        self.dims.iter().product()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
            dims: self.dims,
        }
    }

    /// These images followed by `other`'s (the two halves of one training set, for stand-alone
    /// training on all of it). Both must have the same image size and classes.
    pub fn concat(&self, other: &Dataset) -> Dataset {
        assert!(self.dims == other.dims && self.classes == other.classes, "concatenated datasets must match");
        let mut pixels = self.pixels.clone();
        pixels.extend_from_slice(&other.pixels);
        let mut labels = self.labels.clone();
        labels.extend_from_slice(&other.labels);
        Dataset { pixels, labels, classes: self.classes.clone(), dims: self.dims }
    }

    /// One key per image, from its label and pixels only, mixed with `seed`: an image keeps
    /// its key wherever the source stores it.
    fn content_keys(&self, seed: u64) -> Vec<u64> {
        let salt = mix64(seed ^ 0x5EED_0F_1A6E);
        (0..self.len())
            .into_par_iter()
            .map(|i| {
                let mut h = Fnv1a::new();
                h.write(&self.labels[i].to_le_bytes());
                h.write(self.image(i));
                mix64(h.finish() ^ salt)
            })
            .collect()
    }

    /// Indices of every class's images, each class ordered by content key (ties, which only
    /// identical images share, by index): seeded draws from a class then depend on which
    /// images the source holds, not on the order it stores them in.
    fn by_class(&self, keys: &[u64]) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.classes.len()];
        for (i, &label) in self.labels.iter().enumerate() {
            groups[label as usize].push(i);
        }
        for group in &mut groups {
            group.sort_unstable_by_key(|&i| (keys[i], i));
        }
        groups
    }

    /// The fixed, seeded, class-mixed order in which evaluation, ranking and search see the
    /// images (and the order of every part [`load_splits`] returns).
    ///
    /// Each class's images are ordered by a seeded hash of their label and pixels, and the
    /// classes are interleaved evenly: the `r`-th of a class's `n` images sits at position
    /// `(r + φ) / n` of the whole, `φ ∈ [0, 1)` a seeded phase per class. So every run of
    /// `B` consecutive images holds each class in proportion to its share, to within one
    /// image — batch-statistics BatchNorm never normalises a batch of one class — and the order
    /// is the same whatever order the source stores the images in (a class-sorted ImageFolder
    /// and a shuffled CIFAR binary of the same images give identical batches).
    pub fn mixed_order(&self, seed: u64) -> Vec<usize> {
        let keys = self.content_keys(seed);
        self.mix(self.by_class(&keys), &keys, seed)
    }

    /// [`Dataset::mixed_order`] of the images in `groups` (per class, ordered by `keys`, the
    /// content keys for `seed`), without hashing them again.
    fn mix(&self, groups: Vec<Vec<usize>>, keys: &[u64], seed: u64) -> Vec<usize> {
        let mut placed: Vec<(f64, u64, usize)> = Vec::with_capacity(groups.iter().map(Vec::len).sum());
        for (class, group) in groups.into_iter().enumerate() {
            let phase = Rng::stream(seed, &format!("mix:{class}")).unit();
            let n = group.len() as f64;
            placed.extend(group.into_iter().enumerate().map(|(r, i)| ((r as f64 + phase) / n, keys[i], i)));
        }
        placed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        placed.into_iter().map(|(_, _, i)| i).collect()
    }

    /// The images of `chosen` (per class, ordered by `keys`) as a dataset in
    /// [`Dataset::mixed_order`].
    fn select_mixed(&self, chosen: Vec<Vec<usize>>, keys: &[u64], seed: u64) -> Dataset {
        let chosen = chosen
            .into_iter()
            .map(|mut group| {
                group.sort_unstable_by_key(|&i| (keys[i], i));
                group
            })
            .collect();
        self.select(&self.mix(chosen, keys, seed))
    }

    /// The same images in [`Dataset::mixed_order`].
    pub fn mixed(&self, seed: u64) -> Dataset {
        self.select(&self.mixed_order(seed))
    }

    /// Splits into two class-stratified parts: of every class, a seeded random half (rounded
    /// down) goes to the first part, the rest to the second. Both come in
    /// [`Dataset::mixed_order`].
    pub fn stratified_halves(&self, seed: u64) -> (Dataset, Dataset) {
        let mut rng = Rng::stream(seed, "split");
        let keys = self.content_keys(seed);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for mut group in self.by_class(&keys) {
            rng.shuffle(&mut group);
            let half = group.len() / 2;
            first.push(group[..half].to_vec());
            second.push(group[half..].to_vec());
        }
        (self.select_mixed(first, &keys, seed), self.select_mixed(second, &keys, seed))
    }

    /// A class-stratified random subset of `count` images: every class contributes in
    /// proportion to its size (largest remainders get the leftover images). The subset comes in
    /// [`Dataset::mixed_order`].
    pub fn stratified_subset(&self, count: usize, seed: u64, purpose: &str) -> Result<Dataset, DataError> {
        if count > self.len() {
            return Err(DataError::SubsetTooLarge { count, purpose: purpose.to_string(), available: self.len() });
        }
        if count == self.len() {
            return Ok(self.mixed(seed));
        }
        let keys = self.content_keys(seed);
        let groups = self.by_class(&keys);
        let total = self.len() as f64;
        let mut quota: Vec<(usize, f64)> =
            groups.iter().map(|g| ((g.len() as f64 * count as f64 / total).floor() as usize, 0.0)).collect();
        for (q, g) in quota.iter_mut().zip(&groups) {
            q.1 = g.len() as f64 * count as f64 / total - q.0 as f64;
        }
        let mut missing = count - quota.iter().map(|q| q.0).sum::<usize>();
        let mut order: Vec<usize> = (0..quota.len()).collect();
        order.sort_by(|&a, &b| quota[b].1.total_cmp(&quota[a].1).then(a.cmp(&b)));
        for &c in order.iter().cycle().take(order.len() * 2) {
            if missing == 0 {
                break;
            }
            if quota[c].0 < groups[c].len() {
                quota[c].0 += 1;
                missing -= 1;
            }
        }
        let mut rng = Rng::stream(seed, &format!("subset:{purpose}"));
        let mut chosen = Vec::with_capacity(groups.len());
        for (mut group, (take, _)) in groups.into_iter().zip(quota) {
            rng.shuffle(&mut group);
            chosen.push(group[..take].to_vec());
        }
        Ok(self.select_mixed(chosen, &keys, seed))
    }
}

/// Where the images come from and how the NB201 protocol is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// CIFAR-10 binary folder or ImageFolder root; `None` = the built-in dataset.
    pub path: Option<PathBuf>,
    /// Seed of the train/validation split (fixed across run seeds, like NB201's split file).
    pub split_seed: u64,
    /// Use a stratified subset of this many images of the supernet-training half.
    pub train_images: Option<usize>,
    /// Use a stratified subset of this many images of the validation half.
    pub valid_images: Option<usize>,
    /// Use a stratified subset of this many test images.
    pub test_images: Option<usize>,
    /// Images of the built-in dataset's training and test sets.
    pub builtin_sizes: [usize; 2],
    /// Folder of the on-disk decode cache (default `$XDG_CACHE_HOME/fewshot` or
    /// `~/.cache/fewshot`).
    pub cache_dir: Option<PathBuf>,
    /// Resize every image to this square resolution on load (area averaging), for
    /// reduced-fidelity supernets; `None` keeps the source size.
    pub resolution: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: None,
            split_seed: 0,
            train_images: None,
            valid_images: None,
            test_images: None,
            builtin_sizes: [2000, 500],
            cache_dir: None,
            resolution: None,
        }
    }
}

/// The three parts of the protocol.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Supernet training half.
    pub train: Arc<Dataset>,
    /// Validation half.
    pub valid: Arc<Dataset>,
    /// Held-out test set.
    pub test: Arc<Dataset>,
}

/// Loads the data of `config` and applies the protocol. `dims` (`[C, H, W]`) and `classes`
/// are what the search space's network expects; a mismatch is an error.
pub fn load_splits(config: &DataConfig, dims: [usize; 3], classes: usize) -> Result<Splits, DataError> {
    if let Some(resolution) = config.resolution {
        if dims[1..] != [resolution, resolution] {
            return Err(DataError::Resolution { resolution, expected: dims });
        }
    }
    let (mut train, mut test) = match &config.path {
        None => {
            let [train, test] = config.builtin_sizes;
            let data = builtin(train, test, dims)?;
            (Arc::new(data.0), Arc::new(data.1))
        }
        Some(path) => load_path(path, config.cache_dir.as_deref())?,
    };
    if let Some(side) = config.resolution.filter(|&side| train.dims[1..] != [side, side]) {
        // From the decoded (memoised, disk-cached) images, so the decode cache serves every resolution.
        train = Arc::new(train.resized(side));
        test = Arc::new(test.resized(side));
    }
    let origin = config.path.as_ref().map_or("the built-in dataset".to_string(), |p| p.display().to_string());
    if train.classes.len() != classes {
        return Err(DataError::Classes { origin, found: train.classes.len(), expected: classes });
    }
    if train.dims != dims {
        return Err(DataError::Dims { origin, found: train.dims, expected: dims });
    }
    if test.dims != dims {
        // An image folder of mixed sizes is stored at its smallest short side: its test/ tree
        // can differ from its train/ tree.
        let origin = config.path.as_ref().map_or(origin.clone(), |p| format!("{}/test", p.display()));
        return Err(DataError::Dims { origin, found: test.dims, expected: dims });
    }
    let (half, valid) = train.stratified_halves(config.split_seed);
    let pick = |d: Dataset, n: Option<usize>, purpose: &str| match n {
        Some(n) => d.stratified_subset(n, config.split_seed, purpose),
        None => Ok(d),
    };
    let train = pick(half, config.train_images, "training")?;
    let valid = pick(valid, config.valid_images, "validation")?;
    let test = match config.test_images {
        Some(n) => test.stratified_subset(n, config.split_seed, "test")?,
        None => test.mixed(config.split_seed),
    };
    for (part, d) in [("training", &train), ("validation", &valid), ("test", &test)] {
        if d.len() < 2 {
            return Err(DataError::TooFew { part, origin, count: d.len() });
        }
    }
    Ok(Splits { train: Arc::new(train), valid: Arc::new(valid), test: Arc::new(test) })
}

/// Train and test sets loaded from a path, memoised per process.
fn load_path(path: &Path, cache_dir: Option<&Path>) -> Result<(Arc<Dataset>, Arc<Dataset>), DataError> {
    type Memo = Mutex<HashMap<PathBuf, (u64, Arc<Dataset>, Arc<Dataset>)>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    if !path.exists() {
        return Err(DataError::NoSuchPath(path.to_path_buf()));
    }
    let canonical = fs::canonicalize(path)
        .map_err(|source| DataError::Io { action: "resolve", path: path.to_path_buf(), source })?;
    let key = tree_key(&canonical)?;
    let memo = MEMO.get_or_init(Default::default);
    if let Some((k, train, test)) = memo.lock().expect("data memo").get(&canonical) {
        if *k == key {
            return Ok((train.clone(), test.clone()));
        }
    }
    let (train, test) = match cifar_folder(&canonical) {
        Some(dir) => load_cifar_bin(&dir)?,
        None if canonical.join("train").is_dir() => {
            let train = load_image_folder_cached(&canonical.join("train"), cache_dir)?;
            let test = load_image_folder_cached(&canonical.join("test"), cache_dir)?;
            if train.classes != test.classes {
                return Err(DataError::FolderClasses { root: canonical, train: train.classes, test: test.classes });
            }
            (train, test)
        }
        None => return Err(DataError::UnknownLayout(canonical)),
    };
    let (train, test) = (Arc::new(train), Arc::new(test));
    memo.lock().expect("data memo").insert(canonical, (key, train.clone(), test.clone()));
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fewshot-data-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(super) fn write_png(path: &Path, w: u32, h: u32, value: u8) {
        let file = fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let data: Vec<u8> = (0..w * h * 3).map(|i| value.wrapping_add((i % 3) as u8)).collect();
        writer.write_image_data(&data).unwrap();
    }

    pub(super) fn write_folder(root: &Path, classes: &[&str], per_class: usize, size: u32) {
        for part in ["train", "test"] {
            for (k, class) in classes.iter().enumerate() {
                let dir = root.join(part).join(class);
                fs::create_dir_all(&dir).unwrap();
                for i in 0..per_class {
                    write_png(&dir.join(format!("{i:03}.png")), size, size, (k * 20 + i) as u8);
                }
            }
        }
    }

    #[test]
    fn stratified_split_and_subset_keep_class_balance() {
        let (train, _) = builtin(200, 10, [3, 8, 8]).unwrap();
        let (a, b) = train.stratified_halves(3);
        assert_eq!((a.len(), b.len()), (100, 100));
        for k in 0..10 {
            assert_eq!(a.labels.iter().filter(|&&l| l == k).count(), 10);
        }
        assert_eq!(train.stratified_halves(3).0, a, "seeded");
        assert_ne!(train.stratified_halves(4).0, a);
        let mut seen: Vec<&[u8]> = (0..a.len()).map(|i| a.image(i)).chain((0..b.len()).map(|i| b.image(i))).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 200, "the halves are disjoint and cover the set");
        let sub = train.stratified_subset(35, 1, "training").unwrap();
        assert_eq!(sub.len(), 35);
        for k in 0..10 {
            let count = sub.labels.iter().filter(|&&l| l == k).count();
            assert!((3..=4).contains(&count), "class {k}: {count}");
        }
        assert!(train.stratified_subset(201, 1, "training").unwrap_err().to_string().contains("201"));
    }

    /// `data` stored class by class, as an ImageFolder tree is read.
    fn class_sorted(data: &Dataset) -> Dataset {
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.sort_by_key(|&i| (data.labels[i], i));
        data.select(&order)
    }

    /// The same images in a seeded shuffle, as a CIFAR binary stores them.
    fn shuffled(data: &Dataset, seed: u64) -> Dataset {
        let mut order: Vec<usize> = (0..data.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        data.select(&order)
    }

    #[test]
    fn every_batch_of_the_mixed_order_holds_every_class_in_proportion() {
        let (train, _) = builtin(1000, 10, [3, 8, 8]).unwrap();
        let sorted = class_sorted(&train);
        let order = sorted.mixed_order(7);
        let mut check = order.clone();
        check.sort_unstable();
        assert_eq!(check, (0..1000).collect::<Vec<_>>(), "a permutation");
        for batch in order.chunks(50) {
            let mut counts = [0usize; 10];
            for &i in batch {
                counts[sorted.labels[i] as usize] += 1;
            }
            // 10 classes of 100 images: 5 of each in every 50, to within one image.
            assert!(counts.iter().all(|&c| (4..=6).contains(&c)), "{counts:?}");
        }
        assert_ne!(sorted.mixed_order(8), order, "seeded");
    }

    #[test]
    fn splits_and_orders_do_not_depend_on_how_the_source_stores_the_images() {
        let (train, _) = builtin(300, 10, [3, 8, 8]).unwrap();
        let (sorted, shuffled) = (class_sorted(&train), shuffled(&train, 11));
        assert_ne!(sorted, shuffled);
        assert_eq!(sorted.mixed(3), shuffled.mixed(3));
        assert_eq!(sorted.stratified_halves(3), shuffled.stratified_halves(3));
        assert_eq!(
            sorted.stratified_subset(120, 5, "training").unwrap(),
            shuffled.stratified_subset(120, 5, "training").unwrap()
        );
        assert_eq!(sorted.stratified_subset(300, 5, "training").unwrap(), sorted.mixed(5));
    }
}
