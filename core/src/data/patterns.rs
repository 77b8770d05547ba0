//! The built-in dataset: generated coloured patterns, deterministic and available offline.

use super::{DataError, Dataset};
use crate::util::rng::Rng;

/// The built-in dataset: `train` and `test` images of `dims` (`[3, H, W]`) in 10 classes.
///
/// Class `k` draws a pattern of kind `k mod 5` (horizontal stripes, vertical stripes, checks,
/// a disc, diagonal stripes) in a colour of hue `36°·k`, at a random phase, scale and position,
/// over a random dim background, with pixel noise. The same sizes always give the same images.
pub fn builtin(train: usize, test: usize, dims: [usize; 3]) -> Result<(Dataset, Dataset), DataError> {
    if dims[0] != 3 || dims[1] < 4 || dims[2] < 4 {
        return Err(DataError::BuiltinDims(dims));
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
