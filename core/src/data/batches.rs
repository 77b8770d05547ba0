//! Batches for the engine: normalisation, epoch orders and the prefetch thread.

use std::{
    sync::{mpsc, Arc},
    thread,
};

use super::{augment::Augment, DataError, Dataset};
use crate::util::rng::Rng;

/// Per-channel normalisation mean (CIFAR-10, on the 0..1 scale).
pub const CIFAR_MEAN: [f32; 3] = [125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
/// Per-channel normalisation standard deviation (CIFAR-10, on the 0..1 scale).
pub const CIFAR_STD: [f32; 3] = [63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];

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

/// Assembles a batch of `indices` of `data`: augmented with `augment` and the per-sample
/// generators of (`seed`, `epoch`) when given, then normalised.
pub fn make_batch(data: &Dataset, indices: &[usize], augment: Option<(Augment, u64, usize)>) -> Batch {
    let [c, h, w] = data.dims;
    let n = indices.len();
    let mut pixels = vec![0f32; c * n * h * w];
    let scale: Vec<f32> = (0..c).map(|ch| 1.0 / (255.0 * CIFAR_STD[ch % 3])).collect();
    let shift: Vec<f32> = (0..c).map(|ch| CIFAR_MEAN[ch % 3] / CIFAR_STD[ch % 3]).collect();
    let mut raw = vec![0f32; c * h * w];
    for (slot, &i) in indices.iter().enumerate() {
        let image = data.image(i);
        match augment {
            Some((a, seed, epoch)) => a.apply(image, data.dims, seed, epoch, i, &mut raw),
            None => raw.iter_mut().zip(image).for_each(|(r, &p)| *r = p as f32),
        }
        for ch in 0..c {
            let dst = &mut pixels[(ch * n + slot) * h * w..][..h * w];
            for (d, &r) in dst.iter_mut().zip(&raw[ch * h * w..(ch + 1) * h * w]) {
                *d = r * scale[ch] - shift[ch];
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
    ) -> Result<Prefetch, DataError> {
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
            .map_err(DataError::Prefetch)?;
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
    use crate::data::builtin;

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
