//! Intensity normalisation per channel (channels in parallel).

use ndarray::{Array4, ArrayView3, ArrayViewMut3, Axis};

use super::Normalisation;
use crate::pipeline::volume::parallel;

/// Normalise each channel of `data` (`[C, D, H, W]`) in place as `how` says. Constant
/// channels (or slices, for [`Normalisation::PerSliceMinMax`]) become 0 rather than NaN.
pub fn normalise(data: &mut Array4<f32>, how: &Normalisation) {
    if *how == Normalisation::None {
        return;
    }
    let mut channels: Vec<ArrayViewMut3<f32>> = data.outer_iter_mut().collect();
    let per = channels.len().div_ceil(parallel::threads()).max(1);
    std::thread::scope(|scope| {
        for group in channels.chunks_mut(per) {
            scope.spawn(move || {
                for channel in group {
                    normalise_channel(channel, how);
                }
            });
        }
    });
}

fn normalise_channel(channel: &mut ArrayViewMut3<f32>, how: &Normalisation) {
    match *how {
        Normalisation::None => {}
        Normalisation::VolumeMinMax => {
            let (lo, hi) = min_max(channel.iter().copied());
            rescale(channel.iter_mut(), lo, hi);
        }
        Normalisation::PerSliceMinMax => {
            for mut slice in channel.axis_iter_mut(Axis(0)) {
                let (lo, hi) = min_max(slice.iter().copied());
                rescale(slice.iter_mut(), lo, hi);
            }
        }
        Normalisation::ZScore => {
            let n = channel.len().max(1) as f64;
            let mean = channel.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = channel
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let std = var.sqrt();
            let inv = if std > 0.0 { 1.0 / std } else { 1.0 };
            let (mean, inv) = (mean as f32, inv as f32);
            channel.mapv_inplace(|v| (v - mean) * inv);
        }
        Normalisation::Percentile { low, high } => {
            let [lo, hi] = percentiles(channel.view(), [low, high]);
            rescale(channel.iter_mut(), lo, hi);
        }
        Normalisation::Range { low, high } => {
            rescale(channel.iter_mut(), low as f32, high as f32);
        }
    }
}

/// Smallest and largest value (`(0, 0)` when empty).
fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// Clip to `[lo, hi]` and map that range onto `[0, 1]`; everything 0 when `hi <= lo`.
fn rescale<'a>(values: impl Iterator<Item = &'a mut f32>, lo: f32, hi: f32) {
    if hi > lo {
        // A division rather than a multiplication by the reciprocal, so `hi` maps to
        // exactly 1.
        let range = hi - lo;
        values.for_each(|v| *v = (v.clamp(lo, hi) - lo) / range);
    } else {
        values.for_each(|v| *v = 0.0);
    }
}

/// The `ps[0]`-th and `ps[1]`-th percentiles (0–100) of `values`, with linear
/// interpolation between order statistics (numpy's default).
fn percentiles(values: ArrayView3<f32>, ps: [f64; 2]) -> [f32; 2] {
    let n = values.len();
    if n == 0 {
        return [0.0, 0.0];
    }
    // Each percentile needs the order statistics at floor(rank) and the one after.
    let ranks: Vec<(usize, f32)> = ps
        .iter()
        .map(|p| {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let k = (rank.floor() as usize).min(n - 1);
            (k, (rank - k as f64) as f32)
        })
        .collect();
    let wanted: Vec<usize> = ranks
        .iter()
        .flat_map(|&(k, _)| [k, (k + 1).min(n - 1)])
        .collect();
    let stats = order_statistics(values, &wanted);
    std::array::from_fn(|i| {
        let ((_, frac), (a, b)) = (ranks[i], (stats[2 * i], stats[2 * i + 1]));
        if frac > 0.0 { a + frac * (b - a) } else { a }
    })
}

/// The values of rank `ranks[i]` (0-based, ascending) of `values`, exactly, in two
/// streaming passes and no copy: a radix select on an order-preserving 32-bit key, first
/// by its upper 16 bits over all values, then by its lower 16 bits within the few buckets
/// that hold a wanted rank.
fn order_statistics(values: ArrayView3<f32>, ranks: &[usize]) -> Vec<f32> {
    const BUCKETS: usize = 1 << 16;
    let mut high = vec![0_u32; BUCKETS];
    values
        .iter()
        .for_each(|&v| high[(sort_key(v) >> 16) as usize] += 1);
    // For each wanted rank: its upper bucket and its rank within that bucket.
    let located: Vec<(usize, usize)> = ranks.iter().map(|&rank| locate(&high, rank)).collect();
    let mut slot_of_bucket = vec![0_u8; BUCKETS];
    let mut buckets: Vec<usize> = Vec::new();
    for &(bucket, _) in &located {
        if slot_of_bucket[bucket] == 0 {
            buckets.push(bucket);
            slot_of_bucket[bucket] = buckets.len() as u8;
        }
    }
    let mut low = vec![vec![0_u32; BUCKETS]; buckets.len()];
    values.iter().for_each(|&v| {
        let key = sort_key(v);
        let slot = slot_of_bucket[(key >> 16) as usize];
        if slot != 0 {
            low[slot as usize - 1][(key & 0xFFFF) as usize] += 1;
        }
    });
    located
        .iter()
        .map(|&(bucket, rank)| {
            let (lower, _) = locate(&low[slot_of_bucket[bucket] as usize - 1], rank);
            from_sort_key(((bucket as u32) << 16) | lower as u32)
        })
        .collect()
}

/// The bucket holding rank `rank` of a histogram, and the rank within it.
fn locate(histogram: &[u32], mut rank: usize) -> (usize, usize) {
    for (bucket, &count) in histogram.iter().enumerate() {
        if rank < count as usize {
            return (bucket, rank);
        }
        rank -= count as usize;
    }
    unreachable!("rank beyond the histogram total")
}

/// A `u32` ordered as the `f32` values (total order: -0 before +0, NaNs at the ends).
fn sort_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_sort_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & 0x7FFF_FFFF
    } else {
        !key
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};

    fn data() -> Array4<f32> {
        // Channel 0: slice k holds values k*100 .. k*100+9; channel 1: constant 7.
        Array4::from_shape_fn((2, 3, 2, 5), |(ch, k, r, c)| {
            if ch == 0 {
                (k * 100 + r * 5 + c) as f32
            } else {
                7.0
            }
        })
    }

    #[test]
    fn volume_minmax_scales_each_channel_to_unit_range() {
        let mut d = data();
        normalise(&mut d, &Normalisation::VolumeMinMax);
        assert_eq!(d[[0, 0, 0, 0]], 0.0);
        assert_eq!(d[[0, 2, 1, 4]], 1.0);
        assert!((d[[0, 1, 0, 0]] - 100.0 / 209.0).abs() < 1e-6);
        assert!(d.index_axis(Axis(0), 1).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn per_slice_minmax_scales_each_slice() {
        let mut d = data();
        normalise(&mut d, &Normalisation::PerSliceMinMax);
        for k in 0..3 {
            assert_eq!(d[[0, k, 0, 0]], 0.0);
            assert_eq!(d[[0, k, 1, 4]], 1.0);
            assert!((d[[0, k, 0, 3]] - 3.0 / 9.0).abs() < 1e-6);
        }
    }

    #[test]
    fn zscore_gives_zero_mean_unit_std() {
        let mut d = data();
        normalise(&mut d, &Normalisation::ZScore);
        let c0 = d.index_axis(Axis(0), 0);
        let mean = c0.sum() / c0.len() as f32;
        let var = c0.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / c0.len() as f32;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        assert!(d.index_axis(Axis(0), 1).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        let view = |v: Vec<f32>| Array3::from_shape_vec((1, 1, v.len()), v).unwrap();
        // numpy.percentile(arange(11), [5, 90]) == [0.5, 9.0]
        let v = view((0..11).rev().map(|i| i as f32).collect());
        assert_eq!(percentiles(v.view(), [5.0, 90.0]), [0.5, 9.0]);
        // numpy.percentile([3, 1, 2, 10], [0, 100]) == [1, 10]; [50, 75] == [2.5, 4.75]
        let v = view(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!(percentiles(v.view(), [0.0, 100.0]), [1.0, 10.0]);
        assert_eq!(percentiles(v.view(), [50.0, 75.0]), [2.5, 4.75]);
        // Negative, fractional and repeated values, ranks sharing a bucket: compare with a sort.
        let values: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919 % 5003) as f32 - 2500.0) * 0.37 + (i % 3) as f32 * 1e-3)
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        let ranks = [0, 1, 17, 2499, 2500, 4998, 4999];
        assert_eq!(
            order_statistics(view(values).view(), &ranks),
            ranks.map(|r| sorted[r]).to_vec()
        );
        assert_eq!(
            from_sort_key(sort_key(-0.0)).to_bits(),
            (-0.0_f32).to_bits()
        );
        assert!(sort_key(-1.5) < sort_key(-0.0) && sort_key(0.0) < sort_key(1e-30));
        let mut d = Array4::from_shape_fn((1, 1, 1, 101), |(_, _, _, c)| c as f32);
        normalise(
            &mut d,
            &Normalisation::Percentile {
                low: 10.0,
                high: 60.0,
            },
        );
        assert_eq!(d[[0, 0, 0, 5]], 0.0);
        assert_eq!(d[[0, 0, 0, 35]], 0.5);
        assert_eq!(d[[0, 0, 0, 90]], 1.0);
    }
}
