//! Training augmentation, per sample and seeded by (seed, epoch, sample).
//!
//! Two families, chosen by [`Augment::resized_crop`]:
//! - **CIFAR** (the NB201 recipe): a random crop with zero padding and a horizontal flip.
//! - **ImageNet-style** (the MobileNet recipes): torchvision's `RandomResizedCrop` (a region of
//!   `scale_min`..1 of the image's area and aspect ratio 3/4..4/3, ten tries, then the whole
//!   image), resized back to the image's size bilinearly (half-pixel centres, as PyTorch's
//!   `align_corners=False`), a horizontal flip, and an optional colour jitter (brightness,
//!   contrast and saturation factors drawn from `1 ± jitter`, applied in that order; torchvision
//!   draws the order too, and also jitters hue). Images are stored at the network's resolution
//!   (an image of another size is resized and centre-cropped on load, the evaluation
//!   transform), so the crop is taken from that stored view.

use serde::{Deserialize, Serialize};

use crate::util::rng::Rng;

/// How training images are augmented.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding of the random crop, in pixels (0 = no crop; CIFAR family only).
    pub crop_padding: usize,
    /// Random horizontal flip.
    pub flip: bool,
    /// Random resized crop from this fraction of the area up to all of it (e.g. 0.08); none =
    /// the CIFAR family.
    #[serde(default)]
    pub resized_crop: Option<f64>,
    /// Colour jitter strength of brightness, contrast and saturation (0 = none).
    #[serde(default)]
    pub jitter: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment { crop_padding: 4, flip: true, resized_crop: None, jitter: 0.0 }
    }
}

impl Augment {
    /// True when training images are changed at all.
    pub fn is_active(&self) -> bool {
        self.crop_padding > 0 || self.flip || self.resized_crop.is_some() || self.jitter > 0.0
    }

    /// Writes the augmented sample `index` of `epoch` (planar `u8` `image` of `dims`) into `out`
    /// as 0..255 values.
    pub(super) fn apply(&self, image: &[u8], dims: [usize; 3], seed: u64, epoch: usize, index: usize, out: &mut [f32]) {
        let mut rng = augment_rng(seed, epoch, index);
        match self.resized_crop {
            None => self.padded_crop(image, dims, &mut rng, out),
            Some(scale_min) => {
                resized_crop(image, dims, scale_min, &mut rng, out);
                if self.flip && rng.chance(0.5) {
                    flip(out, dims);
                }
                if self.jitter > 0.0 {
                    jitter(out, dims, self.jitter, &mut rng);
                }
            }
        }
    }

    /// The CIFAR family: shift by up to `crop_padding` pixels (zeros outside) and flip.
    fn padded_crop(&self, image: &[u8], [c, h, w]: [usize; 3], rng: &mut Rng, out: &mut [f32]) {
        let range = 2 * self.crop_padding as u64 + 1;
        let dy = rng.below(range) as isize - self.crop_padding as isize;
        let dx = rng.below(range) as isize - self.crop_padding as isize;
        let flip = self.flip && rng.chance(0.5);
        for ch in 0..c {
            let src = &image[ch * h * w..(ch + 1) * h * w];
            let dst = &mut out[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let sx = (if flip { w - 1 - x } else { x }) as isize + dx;
                    let inside = sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize;
                    dst[y * w + x] = if inside { src[sy as usize * w + sx as usize] as f32 } else { 0.0 };
                }
            }
        }
    }
}

/// The generator of the augmentation of sample `index` in `epoch`.
fn augment_rng(seed: u64, epoch: usize, index: usize) -> Rng {
    Rng::new(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (epoch as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ (index as u64).wrapping_mul(0x1656_67B1_9E37_79F9),
    )
}

/// The region (top, left, height, width) of torchvision's `RandomResizedCrop.get_params`.
fn crop_region(h: usize, w: usize, scale_min: f64, rng: &mut Rng) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * (scale_min + (1.0 - scale_min) * rng.unit());
        let ratio = (lo + (hi - lo) * rng.unit()).exp();
        let cw = (target * ratio).sqrt().round() as usize;
        let ch = (target / ratio).sqrt().round() as usize;
        if (1..=w).contains(&cw) && (1..=h).contains(&ch) {
            let top = rng.below((h - ch + 1) as u64) as usize;
            let left = rng.below((w - cw + 1) as u64) as usize;
            return (top, left, ch, cw);
        }
    }
    (0, 0, h, w)
}

/// A random region of `image` resized bilinearly to the image's own size.
fn resized_crop(image: &[u8], dims: [usize; 3], scale_min: f64, rng: &mut Rng, out: &mut [f32]) {
    let region = crop_region(dims[1], dims[2], scale_min, rng);
    resize_region(image, dims, region, out);
}

/// The region (top, left, height, width) of `image` resized bilinearly to the image's size.
fn resize_region(image: &[u8], [c, h, w]: [usize; 3], (top, left, ch, cw): (usize, usize, usize, usize), out: &mut [f32]) {
    // Source coordinate and the two taps of every output row and column (half-pixel centres).
    let taps = |len: usize, start: usize, size: usize| -> Vec<(usize, usize, f32)> {
        (0..len)
            .map(|o| {
                let s = ((o as f64 + 0.5) * size as f64 / len as f64 - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(size - 1);
                let i1 = (i0 + 1).min(size - 1);
                (start + i0, start + i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(h, top, ch), taps(w, left, cw));
    for p in 0..c {
        let src = &image[p * h * w..(p + 1) * h * w];
        let dst = &mut out[p * h * w..(p + 1) * h * w];
        for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
            for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
                let at = |yy: usize, xx: usize| src[yy * w + xx] as f32;
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                dst[y * w + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

fn flip(out: &mut [f32], [_, _, w]: [usize; 3]) {
    for row in out.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Brightness, contrast and saturation factors from `1 ± strength`, in that order, clamped to
/// 0..255 after each (torchvision's `ColorJitter` on RGB images without hue).
fn jitter(out: &mut [f32], [c, h, w]: [usize; 3], strength: f64, rng: &mut Rng) {
    let mut factor = || (1.0 + strength * (2.0 * rng.unit() - 1.0)).max(0.0) as f32;
    let (brightness, contrast, saturation) = (factor(), factor(), factor());
    let plane = h * w;
    let gray = |out: &[f32], i: usize| {
        if c >= 3 {
            0.299 * out[i] + 0.587 * out[plane + i] + 0.114 * out[2 * plane + i]
        } else {
            out[i]
        }
    };
    let blend = |v: f32, toward: f32, f: f32| (toward + f * (v - toward)).clamp(0.0, 255.0);
    out.iter_mut().for_each(|v| *v = blend(*v, 0.0, brightness));
    let mean = (0..plane).map(|i| gray(out, i)).sum::<f32>() / plane as f32;
    out.iter_mut().for_each(|v| *v = blend(*v, mean, contrast));
    if c >= 3 {
        let grays: Vec<f32> = (0..plane).map(|i| gray(out, i)).collect();
        for (i, v) in out.iter_mut().enumerate() {
            *v = blend(*v, grays[i % plane], saturation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_regions_follow_torchvision_bounds() {
        let mut rng = Rng::new(3);
        let mut areas = Vec::new();
        for _ in 0..500 {
            let (top, left, ch, cw) = crop_region(32, 32, 0.08, &mut rng);
            assert!(top + ch <= 32 && left + cw <= 32 && ch > 0 && cw > 0);
            areas.push((ch * cw) as f64 / 1024.0);
        }
        let small = areas.iter().filter(|&&a| a < 0.3).count();
        assert!(small > 100 && areas.iter().any(|&a| a > 0.9), "areas spread over 0.08..1");
    }

    #[test]
    fn resizing_samples_pixel_centres_and_jitter_stays_in_range() {
        let dims = [3, 6, 5];
        let image: Vec<u8> = (0..90).map(|v| (v * 7 % 256) as u8).collect();
        let mut out = vec![0f32; 90];
        resize_region(&image, dims, (0, 0, 6, 5), &mut out);
        assert!(image.iter().zip(&out).all(|(a, b)| (*a as f32 - b).abs() < 1e-4), "the whole image is itself");
        // A 1×1 region fills the output with that one pixel.
        resize_region(&image, dims, (2, 3, 1, 1), &mut out);
        assert!(out[..30].iter().all(|&v| (v - image[2 * 5 + 3] as f32).abs() < 1e-3));
        let mut rng = Rng::new(1);
        jitter(&mut out, dims, 0.4, &mut rng);
        assert!(out.iter().all(|v| (0.0..=255.0).contains(v)));
        let a = Augment { resized_crop: Some(0.08), jitter: 0.4, ..Augment::default() };
        let (mut x, mut y) = (vec![0f32; 90], vec![0f32; 90]);
        a.apply(&image, dims, 1, 2, 3, &mut x);
        a.apply(&image, dims, 1, 2, 3, &mut y);
        assert_eq!(x, y, "seeded by (seed, epoch, sample)");
        a.apply(&image, dims, 1, 3, 3, &mut y);
        assert_ne!(x, y, "another epoch");
    }
}
