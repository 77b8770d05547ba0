//! Image datasets: loading, the NB201 split protocol, augmentation and batches.
//!
//! ## Sources
//! - **CIFAR-10 binary layout**: a folder with `data_batch_1.bin` … `data_batch_5.bin` and
//!   `test_batch.bin` (or a `cifar-10-batches-bin` folder holding them), 3073-byte records
//!   (label byte, then the red, green and blue 32×32 planes). Class names come from
//!   `batches.meta.txt` when present.
//! - **ImageFolder**: `train/<class>/*.jpg|jpeg|png` and `test/<class>/…` with the same class
//!   folders; classes are the sorted folder names. Images are decoded once, in parallel, and
//!   cached: in memory for the process, and on disk in a compact file keyed by every image's
//!   path, size and modification time (under `$XDG_CACHE_HOME/fewshot`, `~/.cache/fewshot`, or
//!   the configured folder), so the data folder itself may be read-only.
//! - **Built-in**: without a path, a generated dataset of 10 classes of coloured patterns with
//!   noise ([`builtin`]): deterministic, learnable, and available offline.
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
//! Random crop with 4-pixel zero padding and a random horizontal flip, then per-channel
//! normalisation (CIFAR means and standard deviations). The crop and flip of sample `i` in
//! epoch `e` depend only on (seed, e, i), so runs and resumed runs see identical batches.
//! Batches are assembled on a prefetch thread while the previous step computes.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex, OnceLock},
    thread,
    time::UNIX_EPOCH,
};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::util::{
    hash::{mix64, Fnv1a},
    rng::Rng,
};

/// Per-channel normalisation mean (CIFAR-10, on the 0..1 scale).
pub const CIFAR_MEAN: [f32; 3] = [125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
/// Per-channel normalisation standard deviation (CIFAR-10, on the 0..1 scale).
pub const CIFAR_STD: [f32; 3] = [63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];

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
    pub fn stratified_subset(&self, count: usize, seed: u64, purpose: &str) -> Result<Dataset, String> {
        if count > self.len() {
            return Err(format!("asked for {count} {purpose} images, but only {} are available", self.len()));
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
pub fn load_splits(config: &DataConfig, dims: [usize; 3], classes: usize) -> Result<Splits, String> {
    let (train, test) = match &config.path {
        None => {
            let [train, test] = config.builtin_sizes;
            let data = builtin(train, test, dims)?;
            (Arc::new(data.0), Arc::new(data.1))
        }
        Some(path) => load_path(path, config.cache_dir.as_deref())?,
    };
    let origin = config.path.as_ref().map_or("the built-in dataset".to_string(), |p| p.display().to_string());
    if train.classes.len() != classes {
        return Err(format!(
            "{origin} has {} classes, but the search space's network has {classes} outputs (set the space's classes parameter)",
            train.classes.len()
        ));
    }
    if train.dims != dims {
        return Err(format!(
            "{origin} holds {}×{}×{} images, but the search space expects {}×{}×{} (channels×height×width)",
            train.dims[0], train.dims[1], train.dims[2], dims[0], dims[1], dims[2]
        ));
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
            return Err(format!("the {part} set of {origin} has {} images; at least 2 are needed", d.len()));
        }
    }
    Ok(Splits { train: Arc::new(train), valid: Arc::new(valid), test: Arc::new(test) })
}

/// Train and test sets loaded from a path, memoised per process.
fn load_path(path: &Path, cache_dir: Option<&Path>) -> Result<(Arc<Dataset>, Arc<Dataset>), String> {
    type Memo = Mutex<HashMap<PathBuf, (u64, Arc<Dataset>, Arc<Dataset>)>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    if !path.exists() {
        return Err(format!("data path {} does not exist", path.display()));
    }
    let canonical = fs::canonicalize(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
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
                return Err(format!(
                    "{}: the class folders of train/ ({}) and test/ ({}) differ",
                    canonical.display(),
                    train.classes.join(", "),
                    test.classes.join(", ")
                ));
            }
            (train, test)
        }
        None => {
            return Err(format!(
                "{} is neither a CIFAR-10 binary folder (data_batch_1.bin …) nor an ImageFolder tree (train/<class>/…)",
                canonical.display()
            ))
        }
    };
    let (train, test) = (Arc::new(train), Arc::new(test));
    memo.lock().expect("data memo").insert(canonical, (key, train.clone(), test.clone()));
    Ok((train, test))
}

/// A fingerprint of a file tree: every file's relative path, size and modification time.
fn tree_key(root: &Path) -> Result<u64, String> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    files.sort();
    let mut h = Fnv1a::new();
    for (rel, size, mtime) in files {
        h.write(rel.as_bytes());
        h.write(&size.to_le_bytes());
        h.write(&mtime.to_le_bytes());
    }
    Ok(h.finish())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, u64, u128)>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            out.push((rel, meta.len(), mtime));
        }
    }
    Ok(())
}

/// The folder holding the CIFAR-10 `.bin` files, if `root` is (or contains) one.
fn cifar_folder(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join("data_batch_1.bin").is_file())
}

const CIFAR_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads the official CIFAR-10 binary files: (training set, test set).
pub fn load_cifar_bin(dir: &Path) -> Result<(Dataset, Dataset), String> {
    let classes: Vec<String> = match fs::read_to_string(dir.join("batches.meta.txt")) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) => CIFAR_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    if classes.len() != 10 {
        return Err(format!("{}: batches.meta.txt names {} classes, CIFAR-10 has 10", dir.display(), classes.len()));
    }
    let read = |names: &[String]| -> Result<Dataset, String> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
                return Err(format!(
                    "{} is truncated or not a CIFAR-10 batch: {} bytes is not a multiple of the {CIFAR_RECORD}-byte record",
                    path.display(),
                    bytes.len()
                ));
            }
            for (r, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
                if record[0] >= 10 {
                    return Err(format!("{} record {r}: label {} is not a CIFAR-10 class", path.display(), record[0]));
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
            return Err(format!("{}: {name} is missing", dir.display()));
        }
    }
    Ok((read(&train_names)?, read(&["test_batch.bin".to_string()])?))
}

/// Decodes an ImageFolder tree (`<class>/<image>`), through the on-disk cache.
fn load_image_folder_cached(root: &Path, cache_dir: Option<&Path>) -> Result<Dataset, String> {
    if !root.is_dir() {
        return Err(format!("{} is missing (an ImageFolder tree needs train/ and test/)", root.display()));
    }
    let key = tree_key(root)?;
    let cache = cache_dir.map(Path::to_path_buf).or_else(default_cache_dir).map(|d| d.join(format!("images-{key:016x}.bin")));
    if let Some(path) = &cache {
        if let Some(data) = read_cache(path, key) {
            return Ok(data);
        }
    }
    let data = load_image_folder(root)?;
    if let Some(path) = &cache {
        // A cache that cannot be written only costs the next run a decode.
        let _ = write_cache(path, key, &data);
    }
    Ok(data)
}

fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("fewshot")),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("fewshot")),
    }
}

/// Decodes every image of an ImageFolder tree, in parallel.
pub fn load_image_folder(root: &Path) -> Result<Dataset, String> {
    let mut classes = Vec::new();
    let listing = fs::read_dir(root).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    for entry in listing {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", root.display()))?;
        if entry.path().is_dir() {
            classes.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(format!("{} has no class folders", root.display()));
    }
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut images: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .map(|x| matches!(x.to_string_lossy().to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
                    .unwrap_or(false)
            })
            .collect();
        images.sort();
        files.extend(images.into_iter().map(|p| (p, label as u32)));
    }
    if files.is_empty() {
        return Err(format!("{} holds no .jpg or .png images", root.display()));
    }
    let decoded: Vec<Result<Decoded, String>> = files.par_iter().map(|(path, _)| decode_image(path)).collect();
    let mut dims = None;
    let mut pixels = Vec::new();
    for ((path, _), image) in files.iter().zip(decoded) {
        let (data, d) = image?;
        match dims {
            None => dims = Some(d),
            Some(expected) if expected != d => {
                return Err(format!(
                    "{} is {}×{}, but the other images are {}×{}",
                    path.display(),
                    d[2],
                    d[1],
                    expected[2],
                    expected[1]
                ))
            }
            Some(_) => {}
        }
        pixels.extend_from_slice(&data);
    }
    Ok(Dataset {
        pixels,
        labels: files.iter().map(|f| f.1).collect(),
        classes,
        dims: dims.expect("at least one image"),
    })
}

/// A decoded image: planar pixels and `[channels, height, width]`.
type Decoded = (Vec<u8>, [usize; 3]);

/// Decodes one JPEG or PNG into planar RGB (`[3, H, W]`).
fn decode_image(path: &Path) -> Result<Decoded, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bad = |e: String| format!("cannot decode {}: {e}", path.display());
    let is_png = bytes.starts_with(b"\x89PNG");
    let (interleaved, width, height, components) = if is_png {
        let mut decoder = png::Decoder::new(bytes.as_slice());
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(|e| bad(e.to_string()))?;
        buf.truncate(info.buffer_size());
        let components = info.color_type.samples();
        (buf, info.width as usize, info.height as usize, components)
    } else {
        let mut decoder = zune_jpeg::JpegDecoder::new(bytes.as_slice());
        let buf = decoder.decode().map_err(|e| bad(format!("{e:?}")))?;
        let (width, height) = decoder.dimensions().ok_or_else(|| bad("no image size".into()))?;
        let components = decoder
            .get_output_colorspace()
            .map(|c| c.num_components())
            .ok_or_else(|| bad("no colour space".into()))?;
        (buf, width, height, components)
    };
    if width == 0 || height == 0 || interleaved.len() < width * height * components {
        return Err(bad("image data is truncated".into()));
    }
    let plane = width * height;
    let mut planar = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            // Grey images repeat their one channel; alpha is dropped.
            let source = if components < 3 { 0 } else { c };
            planar[c * plane + p] = interleaved[p * components + source];
        }
    }
    Ok((planar, [3, height, width]))
}

const CACHE_MAGIC: &[u8; 12] = b"FEWSHOTIMG1\n";

fn write_cache(path: &Path, key: u64, data: &Dataset) -> Result<(), String> {
    let mut out = Vec::with_capacity(data.pixels.len() + data.labels.len() * 4 + 1024);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&key.to_le_bytes());
    for v in [data.len(), data.dims[0], data.dims[1], data.dims[2], data.classes.len()] {
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
    for class in &data.classes {
        out.extend_from_slice(&(class.len() as u64).to_le_bytes());
        out.extend_from_slice(class.as_bytes());
    }
    for &l in &data.labels {
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(&data.pixels);
    let mut h = Fnv1a::new();
    h.write(&out);
    out.extend_from_slice(&h.finish().to_le_bytes());
    crate::util::files::save(path, &out).map_err(|e| e.to_string())
}

fn read_cache(path: &Path, key: u64) -> Option<Dataset> {
    let bytes = fs::read(path).ok()?;
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(8)?);
    let mut h = Fnv1a::new();
    h.write(body);
    if h.finish().to_le_bytes() != sum || !body.starts_with(CACHE_MAGIC) {
        return None;
    }
    let mut cursor = Cursor { bytes: body, at: CACHE_MAGIC.len() };
    if cursor.word()? != key {
        return None;
    }
    let [n, c, hgt, w, nc] = [(); 5].map(|_| cursor.word().unwrap_or(u64::MAX) as usize);
    let mut classes = Vec::with_capacity(nc.min(1 << 16));
    for _ in 0..nc {
        let len = cursor.word()? as usize;
        classes.push(String::from_utf8(cursor.take(len)?.to_vec()).ok()?);
    }
    let labels: Vec<u32> =
        cursor.take(n.checked_mul(4)?)?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
    let pixels = cursor.take(n.checked_mul(c)?.checked_mul(hgt)?.checked_mul(w)?)?.to_vec();
    Some(Dataset { pixels, labels, classes, dims: [c, hgt, w] })
}

/// Reads a byte buffer front to back.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(out)
    }

    fn word(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The built-in dataset: `train` and `test` images of `dims` (`[3, H, W]`) in 10 classes.
///
/// Class `k` draws a pattern of kind `k mod 5` (horizontal stripes, vertical stripes, checks,
/// a disc, diagonal stripes) in a colour of hue `36°·k`, at a random phase, scale and position,
/// over a random dim background, with pixel noise. The same sizes always give the same images.
pub fn builtin(train: usize, test: usize, dims: [usize; 3]) -> Result<(Dataset, Dataset), String> {
    if dims[0] != 3 || dims[1] < 4 || dims[2] < 4 {
        return Err(format!(
            "the built-in dataset makes RGB images of at least 4×4 pixels; the space expects {}×{}×{}",
            dims[0], dims[1], dims[2]
        ));
    }
    let make = |count: usize, name: &str| {
        let mut rng = Rng::stream(0x5EED, name);
        let mut pixels = Vec::with_capacity(count * dims.iter().product::<usize>());
        let mut labels = Vec::with_capacity(count);
        for i in 0..count {
            let class = (i % 10) as u32;
            labels.push(class);
            pixels.extend(pattern_image(class, dims[1], dims[2], &mut rng));
        }
        Dataset { pixels, labels, classes: (0..10).map(|k| format!("pattern{k}")).collect(), dims }
    };
    Ok((make(train, "builtin:train"), make(test, "builtin:test")))
}

fn pattern_image(class: u32, h: usize, w: usize, rng: &mut Rng) -> Vec<u8> {
    let hue = class as f64 * 36.0;
    let colour = hsv_to_rgb(hue + (rng.unit() - 0.5) * 16.0, 0.6 + 0.4 * rng.unit(), 0.75 + 0.25 * rng.unit());
    let background = [rng.unit() * 0.3, rng.unit() * 0.3, rng.unit() * 0.3];
    let period = 3.0 + 3.0 * rng.unit();
    let phase = rng.unit() * std::f64::consts::TAU;
    let (cy, cx) = (h as f64 * (0.3 + 0.4 * rng.unit()), w as f64 * (0.3 + 0.4 * rng.unit()));
    let radius = h.min(w) as f64 * (0.2 + 0.15 * rng.unit());
    let mut out = vec![0u8; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let (fy, fx) = (y as f64, x as f64);
            let wave = |t: f64| (t * std::f64::consts::TAU / period + phase).sin() > 0.0;
            let on = match class % 5 {
                0 => wave(fy),
                1 => wave(fx),
                2 => wave(fy) ^ wave(fx),
                3 => (fy - cy).hypot(fx - cx) < radius,
                _ => wave((fx + fy) / std::f64::consts::SQRT_2),
            };
            for c in 0..3 {
                let base = if on { colour[c] } else { background[c] };
                let v = (base + rng.normal() * 0.08).clamp(0.0, 1.0);
                out[c * h * w + y * w + x] = (v * 255.0).round() as u8;
            }
        }
    }
    out
}

fn hsv_to_rgb(hue: f64, s: f64, v: f64) -> [f64; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// One batch, ready for the engine: normalised pixels in channel-major order
/// (`[C, N, H, W]`) and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Pixels, `C × N × H × W`.
    pub pixels: Vec<f32>,
    /// Labels, `N`.
    pub labels: Vec<u32>,
    /// `[C, N, H, W]`.
    pub dims: [usize; 4],
}

/// How training images are augmented.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding of the random crop, in pixels (0 = no crop).
    pub crop_padding: usize,
    /// Random horizontal flip.
    pub flip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Augment { crop_padding: 4, flip: true }
    }
}

/// The generator of the crop and flip of sample `index` in `epoch`.
fn augment_rng(seed: u64, epoch: usize, index: usize) -> Rng {
    Rng::new(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (epoch as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ (index as u64).wrapping_mul(0x1656_67B1_9E37_79F9),
    )
}

/// Assembles a batch of `indices` of `data`: augmented with `augment` and the per-sample
/// generators of (`seed`, `epoch`) when given, then normalised.
pub fn make_batch(data: &Dataset, indices: &[usize], augment: Option<(Augment, u64, usize)>) -> Batch {
    let [c, h, w] = data.dims;
    let n = indices.len();
    let mut pixels = vec![0f32; c * n * h * w];
    let scale: Vec<f32> = (0..c).map(|ch| 1.0 / (255.0 * CIFAR_STD[ch % 3])).collect();
    let shift: Vec<f32> = (0..c).map(|ch| CIFAR_MEAN[ch % 3] / CIFAR_STD[ch % 3]).collect();
    for (slot, &i) in indices.iter().enumerate() {
        let image = data.image(i);
        let (dy, dx, flip) = match augment {
            Some((a, seed, epoch)) => {
                let mut rng = augment_rng(seed, epoch, i);
                let range = 2 * a.crop_padding as u64 + 1;
                let dy = rng.below(range) as isize - a.crop_padding as isize;
                let dx = rng.below(range) as isize - a.crop_padding as isize;
                (dy, dx, a.flip && rng.chance(0.5))
            }
            None => (0, 0, false),
        };
        for ch in 0..c {
            let src = &image[ch * h * w..(ch + 1) * h * w];
            let dst = &mut pixels[(ch * n + slot) * h * w..][..h * w];
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let raw = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        src[sy as usize * w + sx as usize] as f32
                    } else {
                        0.0
                    };
                    dst[y * w + x] = raw * scale[ch] - shift[ch];
                }
            }
        }
    }
    Batch { pixels, labels: indices.iter().map(|&i| data.labels[i]).collect(), dims: [c, n, h, w] }
}

/// The batches of one pass over a dataset: `batch_size` images each, a final batch of a single
/// image dropped (batch statistics need two).
pub fn batch_indices(order: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    if batches.len() > 1 && batches.last().is_some_and(|b| b.len() < 2) {
        batches.pop();
    }
    batches
}

/// The training order of epoch `epoch`: a seeded shuffle of all indices.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    Rng::stream(seed, &format!("shuffle:{epoch}")).shuffle(&mut order);
    order
}

/// Batches assembled on a background thread, one step ahead of the consumer.
pub struct Prefetch {
    receiver: Option<mpsc::Receiver<Batch>>,
    worker: Option<thread::JoinHandle<()>>,
}

impl Prefetch {
    /// Starts assembling `batches` of `data` (augmented as in [`make_batch`]).
    pub fn start(
        data: Arc<Dataset>,
        batches: Vec<Vec<usize>>,
        augment: Option<(Augment, u64, usize)>,
    ) -> Result<Prefetch, String> {
        let (sender, receiver) = mpsc::sync_channel(2);
        let worker = thread::Builder::new()
            .name("fewshot-prefetch".into())
            .spawn(move || {
                for indices in batches {
                    if sender.send(make_batch(&data, &indices, augment)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the data prefetch thread: {e}"))?;
        Ok(Prefetch { receiver: Some(receiver), worker: Some(worker) })
    }
}

impl Iterator for Prefetch {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.receiver.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fewshot-data-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

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

    fn write_png(path: &Path, w: u32, h: u32, value: u8) {
        let file = fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let data: Vec<u8> = (0..w * h * 3).map(|i| value.wrapping_add((i % 3) as u8)).collect();
        writer.write_image_data(&data).unwrap();
    }

    fn write_folder(root: &Path, classes: &[&str], per_class: usize, size: u32) {
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
        let err = load_splits(&config, [3, 32, 32], 100).unwrap_err();
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
        let err = load_cifar_bin(&dir).unwrap_err();
        assert!(err.contains("data_batch_3.bin") && err.contains("truncated"), "{err}");
        write_cifar(&dir, 3);
        let mut bytes = fs::read(dir.join("test_batch.bin")).unwrap();
        bytes[CIFAR_RECORD] = 42;
        fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        let err = load_cifar_bin(&dir).unwrap_err();
        assert!(err.contains("label 42"), "{err}");
        fs::remove_file(dir.join("data_batch_5.bin")).unwrap();
        assert!(load_cifar_bin(&dir).unwrap_err().contains("data_batch_5.bin is missing"));
    }

    #[test]
    fn image_folders_load_through_the_cache() {
        let root = temp_dir("folder");
        let cache = root.join("cache");
        write_folder(&root.join("data"), &["cat", "dog"], 3, 8);
        let train = load_image_folder_cached(&root.join("data/train"), Some(&cache)).unwrap();
        assert_eq!(train.classes, ["cat", "dog"]);
        assert_eq!(train.labels, [0, 0, 0, 1, 1, 1]);
        assert_eq!(train.dims, [3, 8, 8]);
        assert_eq!(train.image(4)[0], 21, "planar: red channel of dog 1");
        assert_eq!(train.image(4)[64], 22, "then green");
        let cached: Vec<_> = fs::read_dir(&cache).unwrap().collect();
        assert_eq!(cached.len(), 1, "one cache file");
        let again = load_image_folder_cached(&root.join("data/train"), Some(&cache)).unwrap();
        assert_eq!(again, train);
        // A corrupt cache is ignored and rewritten.
        let file = cached.into_iter().next().unwrap().unwrap().path();
        let mut bytes = fs::read(&file).unwrap();
        bytes[40] ^= 0xFF;
        fs::write(&file, bytes).unwrap();
        assert_eq!(load_image_folder_cached(&root.join("data/train"), Some(&cache)).unwrap(), train);
    }

    #[test]
    fn image_folder_errors_are_clear() {
        let root = temp_dir("folder-bad");
        write_folder(&root, &["a", "b"], 2, 8);
        fs::create_dir_all(root.join("test/c")).unwrap();
        write_png(&root.join("test/c/x.png"), 8, 8, 1);
        let err = load_path(&root, Some(&root.join("cache"))).unwrap_err();
        assert!(err.contains("class folders") && err.contains("differ"), "{err}");
        fs::remove_dir_all(root.join("test/c")).unwrap();
        fs::write(root.join("train/a/broken.jpg"), b"not a jpeg").unwrap();
        let err = load_image_folder(&root.join("train")).unwrap_err();
        assert!(err.contains("broken.jpg"), "{err}");
        fs::remove_file(root.join("train/a/broken.jpg")).unwrap();
        write_png(&root.join("train/a/big.png"), 9, 9, 1);
        let err = load_image_folder(&root.join("train")).unwrap_err();
        assert!(err.contains("big.png") && err.contains("9×9"), "{err}");
        fs::remove_file(root.join("train/a/big.png")).unwrap();
        let config = DataConfig { path: Some(root.clone()), cache_dir: Some(root.join("cache")), ..Default::default() };
        let err = load_splits(&config, [3, 32, 32], 2).unwrap_err();
        assert!(err.contains("3×8×8") && err.contains("3×32×32"), "{err}");
        assert!(load_path(Path::new("/nonexistent/fewshot"), None).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn real_cifar_jpegs_decode() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cifar10-jpeg/test/cat");
        let first = fs::read_dir(&dir).expect("the shared CIFAR-10 JPEG folder").next().unwrap().unwrap().path();
        let (pixels, dims) = decode_image(&first).unwrap();
        assert_eq!(dims, [3, 32, 32]);
        assert!(pixels.iter().any(|&p| p > 0));
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
        assert!(train.stratified_subset(201, 1, "training").unwrap_err().contains("201"));
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

    #[test]
    fn augmentation_is_deterministic_per_epoch_and_sample() {
        let (train, _) = builtin(20, 10, [3, 8, 8]).unwrap();
        let aug = Augment::default();
        let a = make_batch(&train, &[0, 5, 7], Some((aug, 1, 3)));
        assert_eq!(a, make_batch(&train, &[0, 5, 7], Some((aug, 1, 3))));
        assert_ne!(a, make_batch(&train, &[0, 5, 7], Some((aug, 1, 4))), "another epoch");
        let b = make_batch(&train, &[7], Some((aug, 1, 3)));
        let plane = 64;
        assert_eq!(&a.pixels[2 * plane..3 * plane], &b.pixels[..plane], "a sample's crop does not depend on its batch");
        let plain = make_batch(&train, &[2], None);
        let want = train.image(2)[0] as f32 / 255.0;
        let got = plain.pixels[0] * CIFAR_STD[0] + CIFAR_MEAN[0];
        assert!((got - want).abs() < 1e-5);
        assert_eq!(plain.dims, [3, 1, 8, 8]);
        assert_eq!(builtin(20, 10, [3, 8, 8]).unwrap().0, train, "the built-in set is fixed");
    }

    #[test]
    fn batches_and_prefetch() {
        let (train, _) = builtin(21, 1, [3, 4, 4]).unwrap();
        let order = epoch_order(train.len(), 5, 0);
        assert_ne!(order, epoch_order(train.len(), 5, 1));
        let batches = batch_indices(&order, 10);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10], "a lone last image is dropped");
        let stream: Vec<Batch> = Prefetch::start(Arc::new(train.clone()), batches.clone(), None).unwrap().collect();
        assert_eq!(stream.len(), 2);
        assert_eq!(stream[1], make_batch(&train, &batches[1], None));
    }
}
