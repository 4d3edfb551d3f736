//! `GET /api/jobs/{id}/thumbnail.png`: the SEG's busiest frame outlined in red on its source
//! slice, rendered by segnode itself (the dashboard shows it; nothing external is needed).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use ndarray::Array2;

use super::api::{ApiError, blocking};
use super::state::HttpState;
use crate::pipeline::image::load_image;
use crate::pipeline::seg::reader::read_seg;

/// The thumbnail's longer side, in pixels.
pub const THUMBNAIL_SIZE: usize = 192;

/// `GET /api/jobs/{id}/thumbnail.png`.
pub async fn thumbnail(
    State(state): State<Arc<HttpState>>,
    UrlPath(id): UrlPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let png = blocking(&state, move |s| {
        let job = s
            .spool
            .jobs()
            .row(id)?
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
        let seg = job.seg_path.ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("job {id} has no SEG ({})", job.state),
            )
        })?;
        render(s, Path::new(&seg)).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        png,
    ))
}

/// The PNG for the SEG at `seg_path`.
fn render(state: &HttpState, seg_path: &Path) -> Result<Vec<u8>, String> {
    let seg = read_seg(seg_path).map_err(|e| format!("cannot read the SEG: {e}"))?;
    let frame = seg
        .frames
        .iter()
        .max_by_key(|f| f.pixels.iter().filter(|p| **p).count())
        .ok_or("the SEG has no frames")?;
    let source_uid = frame
        .referenced_sop_instance_uid()
        .ok_or("the SEG frame references no source image")?
        .to_string();
    let source = state
        .spool
        .instance(&source_uid)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("source image {source_uid} is no longer in the spool"))?;
    let image = load_image(&source.path).map_err(|e| e.to_string())?;
    let index = frame
        .referenced_frame_number
        .map_or(0, |n| (n as usize).saturating_sub(1))
        .min(image.frames.shape()[0] - 1);
    let slice = image.frames.index_axis(ndarray::Axis(0), index).to_owned();
    if slice.dim() != frame.pixels.dim() {
        return Err(format!(
            "SEG frame {:?} and source {:?} differ in size",
            frame.pixels.dim(),
            slice.dim()
        ));
    }
    let mut mask = frame.pixels.clone();
    for f in &seg.frames {
        if f.referenced_sop_instance_uid() == Some(source_uid.as_str())
            && f.referenced_frame_number == frame.referenced_frame_number
        {
            mask.zip_mut_with(&f.pixels, |a, b| *a |= *b);
        }
    }
    encode_png(&overlay(&slice, &mask))
}

/// RGB rows: the slice windowed to its 1st–99th percentile, the mask's outline in red,
/// scaled (nearest neighbour) so that its longer side is about [`THUMBNAIL_SIZE`].
fn overlay(slice: &Array2<f32>, mask: &Array2<bool>) -> Array2<[u8; 3]> {
    let mut values: Vec<f32> = slice.iter().copied().filter(|v| v.is_finite()).collect();
    values.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        values
            .get(((values.len() as f64 - 1.0) * q) as usize)
            .copied()
    };
    let (lo, hi) = (pick(0.01).unwrap_or(0.0), pick(0.99).unwrap_or(1.0));
    let span = (hi - lo).max(f32::EPSILON);
    let (rows, cols) = slice.dim();
    let full = Array2::from_shape_fn((rows, cols), |(r, c)| {
        if is_edge(mask, r, c, 1) {
            return [255, 40, 40];
        }
        let g = (((slice[(r, c)] - lo) / span).clamp(0.0, 1.0) * 255.0) as u8;
        [g, g, g]
    });
    let longer = rows.max(cols).max(1);
    if longer > THUMBNAIL_SIZE {
        // Shrink: keep every outline pixel of a block visible.
        let step = longer.div_ceil(THUMBNAIL_SIZE);
        let (out_rows, out_cols) = (rows.div_ceil(step), cols.div_ceil(step));
        Array2::from_shape_fn((out_rows, out_cols), |(r, c)| {
            let (sr, sc) = (r * step, c * step);
            if is_edge(mask, sr, sc, step) {
                [255, 40, 40]
            } else {
                full[(sr, sc)]
            }
        })
    } else {
        let k = (THUMBNAIL_SIZE / longer).max(1);
        Array2::from_shape_fn((rows * k, cols * k), |(r, c)| full[(r / k, c / k)])
    }
}

/// Whether the block at (r, c) of size `step` holds a mask pixel next to a non-mask one.
fn is_edge(mask: &Array2<bool>, r: usize, c: usize, step: usize) -> bool {
    let (rows, cols) = mask.dim();
    for y in r..(r + step).min(rows) {
        for x in c..(c + step).min(cols) {
            if !mask[(y, x)] {
                continue;
            }
            let outside = |dy: isize, dx: isize| {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                ny < 0
                    || nx < 0
                    || ny >= rows as isize
                    || nx >= cols as isize
                    || !mask[(ny as usize, nx as usize)]
            };
            if outside(-1, 0) || outside(1, 0) || outside(0, -1) || outside(0, 1) {
                return true;
            }
        }
    }
    false
}

fn encode_png(pixels: &Array2<[u8; 3]>) -> Result<Vec<u8>, String> {
    let (rows, cols) = pixels.dim();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, cols as u32, rows as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    let data: Vec<u8> = pixels.iter().flatten().copied().collect();
    writer.write_image_data(&data).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_is_red_and_the_inside_grey() {
        let slice = Array2::from_shape_fn((20, 20), |(r, _)| r as f32);
        let mask = Array2::from_shape_fn((20, 20), |(r, c)| {
            (5..15).contains(&r) && (5..15).contains(&c)
        });
        let rgb = overlay(&slice, &mask);
        let k = THUMBNAIL_SIZE / 20;
        assert_eq!(rgb.dim(), (20 * k, 20 * k));
        assert_eq!(rgb[(5 * k, 7 * k)], [255, 40, 40]);
        assert_ne!(rgb[(10 * k, 10 * k)], [255, 40, 40]);
        assert_eq!(rgb[(10 * k, 10 * k)][0], rgb[(10 * k, 10 * k)][1]);
        let png = encode_png(&rgb).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let big = Array2::from_shape_fn((1000, 500), |(r, _)| r as f32);
        let big_mask = Array2::from_shape_fn((1000, 500), |(r, c)| {
            r > 400 && r < 600 && c > 100 && c < 300
        });
        let small = overlay(&big, &big_mask);
        assert_eq!(small.dim(), (167, 84));
        assert!(small.iter().any(|p| *p == [255, 40, 40]));
    }
}
