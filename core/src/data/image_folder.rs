//! ImageFolder trees (`<class>/<image>.jpg|png`): the file-tree walk and fingerprint, and JPEG
//! and PNG decoding into planar RGB.

use std::{
    fs,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use rayon::prelude::*;

use super::{resize::centre_square, DataError, Dataset};
use crate::util::hash::Fnv1a;

/// A fingerprint of a file tree: every file's relative path, size and modification time.
pub(super) fn tree_key(root: &Path) -> Result<u64, DataError> {
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

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, u64, u128)>) -> Result<(), DataError> {
    let entries = fs::read_dir(dir).map_err(io_error("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(io_error("read", &path))?;
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

/// A [`DataError::Io`] maker for `map_err`.
fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DataError + 'a {
    move |source| DataError::Io { action, path: path.to_path_buf(), source }
}

/// Decodes every image of an ImageFolder tree, in parallel.
pub fn load_image_folder(root: &Path) -> Result<Dataset, DataError> {
    let mut classes = Vec::new();
    let listing = fs::read_dir(root).map_err(io_error("list", root))?;
    for entry in listing {
        let entry = entry.map_err(io_error("list", root))?;
        if entry.path().is_dir() {
            classes.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::NoClasses(root.to_path_buf()));
    }
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut images: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_error("list", &dir))?
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
        return Err(DataError::NoImages(root.to_path_buf()));
    }
    let decoded: Vec<Decoded> = files
        .par_iter()
        .map(|(path, _)| decode_image(path))
        .collect::<Result<_, _>>()?;
    let first = decoded[0].1;
    let uniform = decoded.iter().all(|(_, d)| *d == first);
    // Images of several sizes are stored as their centre squares at the smallest short side.
    let side = decoded.iter().map(|(_, [_, h, w])| (*h).min(*w)).min().expect("at least one image");
    let dims = if uniform { first } else { [3, side, side] };
    let mut pixels = Vec::with_capacity(files.len() * dims.iter().product::<usize>());
    for (data, d) in &decoded {
        if uniform {
            pixels.extend_from_slice(data);
        } else {
            pixels.extend_from_slice(&centre_square(data, *d, side));
        }
    }
    Ok(Dataset { pixels, labels: files.iter().map(|f| f.1).collect(), classes, dims })
}

/// A decoded image: planar pixels and `[channels, height, width]`.
type Decoded = (Vec<u8>, [usize; 3]);

/// Decodes one JPEG or PNG into planar RGB (`[3, H, W]`).
fn decode_image(path: &Path) -> Result<Decoded, DataError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    let bad = |reason: String| DataError::Decode { path: path.to_path_buf(), reason };
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

#[cfg(test)]
mod tests {
    use std::{fs, path::{Path, PathBuf}};

    use super::*;
    use crate::data::{load_path, load_splits, tests::{temp_dir, write_folder, write_png}, DataConfig};

    #[test]
    fn image_folder_errors_are_clear() {
        let root = temp_dir("folder-bad");
        write_folder(&root, &["a", "b"], 2, 8);
        fs::create_dir_all(root.join("test/c")).unwrap();
        write_png(&root.join("test/c/x.png"), 8, 8, 1);
        let err = load_path(&root, Some(&root.join("cache"))).unwrap_err().to_string();
        assert!(err.contains("class folders") && err.contains("differ"), "{err}");
        fs::remove_dir_all(root.join("test/c")).unwrap();
        fs::write(root.join("train/a/broken.jpg"), b"not a jpeg").unwrap();
        let err = load_image_folder(&root.join("train")).unwrap_err().to_string();
        assert!(err.contains("broken.jpg"), "{err}");
        fs::remove_file(root.join("train/a/broken.jpg")).unwrap();
        let config = DataConfig { path: Some(root.clone()), cache_dir: Some(root.join("cache")), ..Default::default() };
        let err = load_splits(&config, [3, 32, 32], 2).unwrap_err().to_string();
        assert!(err.contains("3×8×8") && err.contains("3×32×32"), "{err}");
        assert!(load_path(Path::new("/nonexistent/fewshot"), None).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn images_of_any_size_become_centre_squares_at_the_smallest_short_side() {
        let root = temp_dir("folder-sizes");
        for (name, w, h, value) in [("wide.png", 16, 8, 10), ("tall.png", 10, 20, 40), ("square.png", 12, 12, 90)] {
            fs::create_dir_all(root.join("a")).unwrap();
            write_png(&root.join("a").join(name), w, h, value);
        }
        let data = load_image_folder(&root).unwrap();
        assert_eq!((data.len(), data.dims), (3, [3, 8, 8]), "the smallest short side is 8");
        // write_png fills channel k with value + k: area averaging keeps a constant plane.
        let square = data.image(0); // files sort: square, tall, wide
        assert!(square[..64].iter().all(|&v| v == 90) && square[64..128].iter().all(|&v| v == 91));
        assert!(data.image(2)[..64].iter().all(|&v| v == 10));
        // A gradient image: the centre square of a 4×2 (w×h) image is its middle two columns.
        let image: Vec<u8> = (0..3).flat_map(|_| [0u8, 10, 20, 30, 40, 50, 60, 70]).collect();
        assert_eq!(centre_square(&image, [3, 2, 4], 2)[..4], [10, 20, 50, 60]);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn real_cifar_jpegs_decode() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cifar10-jpeg/test/cat");
        let first = fs::read_dir(&dir).expect("the shared CIFAR-10 JPEG folder").next().unwrap().unwrap().path();
        let (pixels, dims) = decode_image(&first).unwrap();
        assert_eq!(dims, [3, 32, 32]);
        assert!(pixels.iter().any(|&p| p > 0));
    }
}
