//! Reduced-fidelity images: area averaging (a box filter) to a square resolution, from any
//! source size. Every output pixel is the mean of the source area it covers, partly covered
//! source pixels weighted by the covered fraction, so 32×32 → 16×16 averages 2×2 blocks exactly
//! and non-integer ratios neither skip nor repeat source pixels.

use rayon::prelude::*;

use super::Dataset;

/// For each of `out` output positions over `len` source positions: the (source index, weight)
/// pairs it averages; the weights of one output sum to 1.
fn area_weights(len: usize, out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|o| {
            let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(len);
            (first..last)
                .map(|i| {
                    let covered = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
                    (i, (covered / scale) as f32)
                })
                .filter(|&(_, w)| w > 0.0)
                .collect()
        })
        .collect()
}

/// One `h × w` plane averaged to `side × side`.
fn resize_plane(plane: &[u8], w: usize, rows: &[Vec<(usize, f32)>], cols: &[Vec<(usize, f32)>], out: &mut [u8]) {
    let side = cols.len();
    // Columns first: each source row becomes `side` values.
    let narrowed: Vec<f32> = plane
        .chunks_exact(w)
        .flat_map(|row| cols.iter().map(move |taps| taps.iter().map(|&(i, wt)| wt * row[i] as f32).sum::<f32>()))
        .collect();
    for (r, taps) in rows.iter().enumerate() {
        for c in 0..side {
            let v: f32 = taps.iter().map(|&(i, wt)| wt * narrowed[i * side + c]).sum();
            out[r * side + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// The centre square of one planar image of `[c, h, w]` (its short side), area-averaged to
/// `side × side`: torchvision's `Resize(side)` + `CenterCrop(side)` with area filtering.
pub(super) fn centre_square(image: &[u8], [c, h, w]: [usize; 3], side: usize) -> Vec<u8> {
    let short = h.min(w);
    let (top, left) = ((h - short) / 2, (w - short) / 2);
    let mut square = Vec::with_capacity(c * short * short);
    for plane in image.chunks_exact(h * w) {
        for row in plane.chunks_exact(w).skip(top).take(short) {
            square.extend_from_slice(&row[left..left + short]);
        }
    }
    let weights = area_weights(short, side);
    let mut out = vec![0u8; c * side * side];
    for (plane, dst) in square.chunks_exact(short * short).zip(out.chunks_exact_mut(side * side)) {
        resize_plane(plane, short, &weights, &weights, dst);
    }
    out
}

impl Dataset {
    /// The same images at `side × side` by area averaging (the same dataset if already so).
    pub fn resized(&self, side: usize) -> Dataset {
        let [c, h, w] = self.dims;
        if (h, w) == (side, side) {
            return self.clone();
        }
        let (rows, cols) = (area_weights(h, side), area_weights(w, side));
        let (src, dst) = (h * w, side * side);
        let mut pixels = vec![0u8; self.len() * c * dst];
        pixels.par_chunks_mut(c * dst).zip(self.pixels.par_chunks(c * src)).for_each(|(out, image)| {
            for (plane, out) in image.chunks_exact(src).zip(out.chunks_exact_mut(dst)) {
                resize_plane(plane, w, &rows, &cols, out);
            }
        });
        Dataset { pixels, labels: self.labels.clone(), classes: self.classes.clone(), dims: [c, side, side] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_plane(h: usize, w: usize, pixels: Vec<u8>) -> Dataset {
        Dataset { pixels, labels: vec![0], classes: vec!["a".into()], dims: [1, h, w] }
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        let d = one_plane(2, 4, vec![0, 10, 20, 30, 100, 110, 121, 131]).resized(1);
        assert_eq!(d.dims, [1, 1, 1]);
        // 2×4 → 1×1: the mean of all eight.
        assert_eq!(d.pixels, vec![65]);
        let d = one_plane(4, 4, (0..16).map(|v| v * 10).collect()).resized(2);
        // Blocks {0,10,40,50}, {20,30,60,70}, {80,90,120,130}, {100,110,140,150}.
        assert_eq!(d.pixels, vec![25, 45, 105, 125]);
    }

    #[test]
    fn a_non_integer_ratio_weights_partly_covered_pixels() {
        // 3 → 2: output 0 covers pixel 0 and half of pixel 1, output 1 the other half and pixel 2.
        let d = one_plane(1, 3, vec![0, 90, 180]).resized(2);
        assert_eq!(d.dims, [1, 2, 2]);
        // Rows: 1 → 2 repeats the row; columns: (0 + 0.5·90)/1.5 = 30, (0.5·90 + 180)/1.5 = 150.
        assert_eq!(d.pixels, vec![30, 150, 30, 150]);
        for (len, out) in [(32, 16), (37, 16), (5, 7), (224, 64)] {
            for taps in area_weights(len, out) {
                assert!((taps.iter().map(|t| t.1).sum::<f32>() - 1.0).abs() < 1e-5, "{len} -> {out}");
            }
        }
    }

    #[test]
    fn a_uniform_image_stays_uniform_and_the_same_size_is_unchanged() {
        let d = one_plane(5, 7, vec![77; 35]);
        assert_eq!(d.resized(3).pixels, vec![77; 9]);
        let same = one_plane(2, 2, vec![1, 2, 3, 4]).resized(2);
        assert_eq!(same.pixels, vec![1, 2, 3, 4]);
    }
}
