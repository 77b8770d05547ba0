//! The on-disk decode cache of ImageFolder trees: one file per tree, keyed by the tree's
//! fingerprint (every image's path, size and modification time) and checked by a checksum.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{
    image_folder::{load_image_folder, tree_key},
    DataError, Dataset,
};
use crate::util::{files::SaveError, hash::Fnv1a};

/// Decodes an ImageFolder tree (`<class>/<image>`), through the on-disk cache.
pub(super) fn load_image_folder_cached(root: &Path, cache_dir: Option<&Path>) -> Result<Dataset, DataError> {
    if !root.is_dir() {
        return Err(DataError::FolderMissing(root.to_path_buf()));
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

const CACHE_MAGIC: &[u8; 12] = b"FEWSHOTIMG1\n";

fn write_cache(path: &Path, key: u64, data: &Dataset) -> Result<(), SaveError> {
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
    crate::util::files::save(path, &out)
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::data::tests::{temp_dir, write_folder};

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
}
