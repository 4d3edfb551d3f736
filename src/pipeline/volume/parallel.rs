//! Minimal data parallelism on scoped std threads, for the pure volume stages.
//!
//! The work is split into one contiguous chunk per core (no work stealing): resampling and
//! decoding cost about the same per item, and contiguous chunks keep each thread's writes
//! in its own cache lines.

use std::num::NonZeroUsize;

/// Below this many output elements, threads cost more than they save.
const MIN_PARALLEL_ELEMENTS: usize = 1 << 16;

/// Worker threads to use: the available cores, at most 16.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(16)
}

/// Split `out` into at most [`threads`] contiguous chunks of whole `unit`s and call
/// `f(first_unit_index, chunk)` on each, in parallel. `out.len()` must be a multiple of
/// `unit`.
pub(crate) fn for_each_chunk<T, F>(out: &mut [T], unit: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let unit = unit.max(1);
    debug_assert_eq!(out.len() % unit, 0);
    let units = out.len() / unit;
    let workers = if out.len() < MIN_PARALLEL_ELEMENTS {
        1
    } else {
        threads().min(units)
    };
    if workers <= 1 {
        f(0, out);
        return;
    }
    let per = units.div_ceil(workers);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(per * unit).enumerate() {
            let f = &f;
            scope.spawn(move || f(i * per, chunk));
        }
    });
}

/// `items.iter().map(f).collect()`, in parallel, preserving order.
pub(crate) fn map<I, R, F>(items: &[I], f: F) -> Vec<R>
where
    I: Sync,
    R: Send,
    F: Fn(&I) -> R + Sync,
{
    let workers = threads().min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| {
                let f = &f;
                scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_unit_once() {
        let mut out = vec![0_u32; 3 * 70_001];
        for_each_chunk(&mut out, 3, |first, chunk| {
            for (u, c) in chunk.chunks_mut(3).enumerate() {
                c.fill((first + u) as u32);
            }
        });
        assert!(
            out.chunks(3)
                .enumerate()
                .all(|(u, c)| c.iter().all(|&v| v == u as u32))
        );
        let squares = map(&(0..1000).collect::<Vec<u64>>(), |v| v * v);
        assert!(
            squares
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i * i) as u64)
        );
    }
}
