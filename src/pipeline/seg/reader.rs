//! An independent reader of BINARY and LABELMAP DICOM Segmentations: segments, per-frame
//! references and positions, and the unpacked frames (a LABELMAP frame split into one mask
//! per segment). It shares no code with the encoder except the bit unpacking, so a round trip through it checks the encoder rather than mirroring it. It
//! accepts attributes in either the Shared or the Per-frame Functional Groups, so SEGs from
//! other producers (highdicom, dcmqi) read too.

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::{Array2, Array3, s};

use super::bits::unpack_frame;
use super::codes::Code;
use super::elements::{first_item, get_items, get_str, get_strs, get_u32, get_u32s};
use super::error::SegError;
use super::labelmap::read_label_frame;
use crate::uids::{LABEL_MAP_SEGMENTATION_STORAGE, SEGMENTATION_STORAGE};

/// What a SEG holds.
#[derive(Debug, Clone)]
pub struct SegContents {
    /// SOPInstanceUID of the SEG.
    pub sop_instance_uid: String,
    /// SeriesInstanceUID of the SEG.
    pub series_instance_uid: String,
    /// StudyInstanceUID (that of the source study).
    pub study_instance_uid: String,
    /// FrameOfReferenceUID, when the SEG has patient geometry.
    pub frame_of_reference_uid: Option<String>,
    /// Rows of every frame.
    pub rows: u16,
    /// Columns of every frame.
    pub columns: u16,
    /// SegmentsOverlap (`YES`, `NO` or `UNDEFINED`), if present.
    pub segments_overlap: Option<String>,
    /// Shared ImageOrientationPatient (DS strings as written); empty if none.
    pub image_orientation: Vec<String>,
    /// Shared PixelSpacing (DS strings as written); empty if none.
    pub pixel_spacing: Vec<String>,
    /// The Segment Sequence.
    pub segments: Vec<SegmentInfo>,
    /// Every frame, in file order; a LABELMAP frame is read as one frame per segment (its
    /// pixels holding that segment number), in Segment Sequence order.
    pub frames: Vec<SegFrame>,
    /// The ReferencedSeriesSequence.
    pub referenced_series: Vec<ReferencedSeries>,
    /// SeriesInstanceUIDs of the Related Series Sequence (the model's other inputs).
    pub related_series: Vec<String>,
}

/// One item of the Segment Sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    /// SegmentNumber.
    pub number: u16,
    /// SegmentLabel.
    pub label: String,
    /// SegmentAlgorithmType (`AUTOMATIC`, `SEMIAUTOMATIC`, `MANUAL`).
    pub algorithm_type: String,
    /// SegmentAlgorithmName, if present.
    pub algorithm_name: Option<String>,
    /// Segmented Property Category.
    pub category: Option<Code>,
    /// Segmented Property Type.
    pub property_type: Option<Code>,
}

/// One frame of the SEG.
#[derive(Debug, Clone)]
pub struct SegFrame {
    /// ReferencedSegmentNumber of the frame (for LABELMAP: the segment this frame was
    /// split out for).
    pub segment_number: u16,
    /// Source images the frame was derived from (usually one).
    pub referenced_sop_instance_uids: Vec<String>,
    /// The source frame (ReferencedFrameNumber of the first source image), when the source
    /// is a multi-frame image.
    pub referenced_frame_number: Option<u32>,
    /// ImagePositionPatient of the frame (DS strings as written); empty without geometry.
    pub image_position: Vec<String>,
    /// DimensionIndexValues of the frame.
    pub dimension_index_values: Vec<u32>,
    /// The frame's pixels, `[rows, columns]`.
    pub pixels: Array2<bool>,
}

impl SegFrame {
    /// The first (usually only) source image of the frame.
    pub fn referenced_sop_instance_uid(&self) -> Option<&str> {
        self.referenced_sop_instance_uids
            .first()
            .map(String::as_str)
    }
}

/// One item of the ReferencedSeriesSequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencedSeries {
    /// SeriesInstanceUID of the referenced series.
    pub series_instance_uid: String,
    /// Referenced instances: (SOP Class UID, SOP Instance UID).
    pub instances: Vec<(String, String)>,
}

/// Read a SEG file.
pub fn read_seg(path: &Path) -> Result<SegContents, SegError> {
    let obj = dicom_object::open_file(path).map_err(|e| SegError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    SegContents::from_object(&obj)
}

impl SegContents {
    /// Read the SEG from a parsed data set.
    pub fn from_object(ds: &InMemDicomObject) -> Result<SegContents, SegError> {
        let bad = |m: String| SegError::Malformed(m);
        let class = get_str(ds, tags::SOP_CLASS_UID).unwrap_or_default();
        if class != SEGMENTATION_STORAGE && class != LABEL_MAP_SEGMENTATION_STORAGE {
            return Err(bad(format!(
                "SOP class {class:?} is not (Label Map) Segmentation Storage"
            )));
        }
        let seg_type = get_str(ds, tags::SEGMENTATION_TYPE).unwrap_or_default();
        let bits = get_u32(ds, tags::BITS_ALLOCATED).unwrap_or_default();
        let labelmap = match (seg_type.as_str(), bits) {
            ("BINARY", 1) => false,
            ("LABELMAP", 8 | 16) => true,
            _ => {
                return Err(SegError::Unsupported(format!(
                    "SegmentationType {seg_type:?} with BitsAllocated {bits}; BINARY (1) and LABELMAP (8, 16) are read"
                )));
            }
        };
        let segments: Vec<SegmentInfo> = get_items(ds, tags::SEGMENT_SEQUENCE)
            .iter()
            .map(segment_info)
            .collect::<Result<_, _>>()?;
        let dim = |tag, name| {
            get_u32(ds, tag)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| bad(format!("no {name}")))
        };
        let (rows, columns) = (dim(tags::ROWS, "Rows")?, dim(tags::COLUMNS, "Columns")?);
        let count = get_u32(ds, tags::NUMBER_OF_FRAMES)
            .ok_or_else(|| bad("no NumberOfFrames".into()))? as usize;
        let shared = first_item(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame = get_items(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        if per_frame.len() != count {
            return Err(bad(format!(
                "{count} frames but {} per-frame functional group items",
                per_frame.len()
            )));
        }
        let data = ds
            .get(tags::PIXEL_DATA)
            .ok_or_else(|| bad("no PixelData".into()))?
            .to_bytes()
            .map_err(|_| SegError::Unsupported("encapsulated (compressed) pixel data".into()))?;

        let mut frames = Vec::with_capacity(count);
        for (i, item) in per_frame.iter().enumerate() {
            let group = |seq_tag| group(item, shared, seq_tag);
            let segment_number = if labelmap {
                0
            } else {
                group(tags::SEGMENT_IDENTIFICATION_SEQUENCE)
                    .and_then(|g| get_u32(g, tags::REFERENCED_SEGMENT_NUMBER))
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| bad(format!("frame {} has no ReferencedSegmentNumber", i + 1)))?
            };
            let referenced_sop_instance_uids = group(tags::DERIVATION_IMAGE_SEQUENCE)
                .map(|d| {
                    get_items(d, tags::SOURCE_IMAGE_SEQUENCE)
                        .iter()
                        .filter_map(|s| get_str(s, tags::REFERENCED_SOP_INSTANCE_UID))
                        .collect()
                })
                .unwrap_or_default();
            let referenced_frame_number = group(tags::DERIVATION_IMAGE_SEQUENCE)
                .and_then(|d| get_items(d, tags::SOURCE_IMAGE_SEQUENCE).first())
                .and_then(|s| get_u32(s, tags::REFERENCED_FRAME_NUMBER));
            let image_position = group(tags::PLANE_POSITION_SEQUENCE)
                .map(|p| get_strs(p, tags::IMAGE_POSITION_PATIENT))
                .unwrap_or_default();
            let dimension_index_values = group(tags::FRAME_CONTENT_SEQUENCE)
                .map(|c| get_u32s(c, tags::DIMENSION_INDEX_VALUES))
                .unwrap_or_default();
            let frame = SegFrame {
                segment_number,
                referenced_sop_instance_uids,
                referenced_frame_number,
                image_position,
                dimension_index_values,
                pixels: Array2::from_elem((0, 0), false),
            };
            let (r, c) = (usize::from(rows), usize::from(columns));
            if labelmap {
                // One frame per segment, so that LABELMAP and BINARY read alike.
                let values = read_label_frame(&data, i, r, c, bits)
                    .map_err(|e| bad(format!("frame {}: {e}", i + 1)))?;
                for segment in &segments {
                    frames.push(SegFrame {
                        segment_number: segment.number,
                        pixels: values.mapv(|v| v == segment.number),
                        ..frame.clone()
                    });
                }
            } else {
                let pixels = unpack_frame(&data, i, r, c)
                    .map_err(|e| bad(format!("frame {}: {e}", i + 1)))?;
                frames.push(SegFrame { pixels, ..frame });
            }
        }

        let shared_strs = |seq_tag, tag| {
            shared
                .and_then(|s| first_item(s, seq_tag))
                .map(|g| get_strs(g, tag))
                .unwrap_or_default()
        };
        Ok(SegContents {
            sop_instance_uid: get_str(ds, tags::SOP_INSTANCE_UID).unwrap_or_default(),
            series_instance_uid: get_str(ds, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
            study_instance_uid: get_str(ds, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
            frame_of_reference_uid: get_str(ds, tags::FRAME_OF_REFERENCE_UID),
            rows,
            columns,
            segments_overlap: get_str(ds, tags::SEGMENTS_OVERLAP),
            image_orientation: shared_strs(
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            ),
            pixel_spacing: shared_strs(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING),
            segments,
            frames,
            referenced_series: get_items(ds, tags::REFERENCED_SERIES_SEQUENCE)
                .iter()
                .map(referenced)
                .collect(),
            related_series: get_items(ds, tags::RELATED_SERIES_SEQUENCE)
                .iter()
                .filter_map(|r| get_str(r, tags::SERIES_INSTANCE_UID))
                .collect(),
        })
    }

    /// The mask of `segment` as a volume `[instances.len(), rows, columns]`, slice `k` being
    /// the frame(s) that reference `instances[k]`; slices without a frame are empty.
    pub fn segment_volume(
        &self,
        segment: u16,
        instances: &[&str],
    ) -> Result<Array3<bool>, SegError> {
        let mut volume = Array3::from_elem(
            (
                instances.len(),
                usize::from(self.rows),
                usize::from(self.columns),
            ),
            false,
        );
        for frame in self.frames.iter().filter(|f| f.segment_number == segment) {
            let uid = frame.referenced_sop_instance_uid().unwrap_or_default();
            let k = instances.iter().position(|i| *i == uid).ok_or_else(|| {
                SegError::Malformed(format!(
                    "a frame of segment {segment} references unknown instance {uid:?}"
                ))
            })?;
            let mut slice = volume.slice_mut(s![k, .., ..]);
            slice.zip_mut_with(&frame.pixels, |v, p| *v |= *p);
        }
        Ok(volume)
    }
}

/// First item of a functional group sequence, per-frame first, then shared.
fn group<'a>(
    per_frame: &'a InMemDicomObject,
    shared: Option<&'a InMemDicomObject>,
    seq_tag: Tag,
) -> Option<&'a InMemDicomObject> {
    first_item(per_frame, seq_tag).or_else(|| shared.and_then(|s| first_item(s, seq_tag)))
}

fn code(item: &InMemDicomObject, seq_tag: Tag) -> Option<Code> {
    let c = first_item(item, seq_tag)?;
    Some(Code::new(
        get_str(c, tags::CODE_VALUE).unwrap_or_default(),
        get_str(c, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        get_str(c, tags::CODE_MEANING).unwrap_or_default(),
    ))
}

fn segment_info(item: &InMemDicomObject) -> Result<SegmentInfo, SegError> {
    let number = get_u32(item, tags::SEGMENT_NUMBER)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            SegError::Malformed("a Segment Sequence item has no SegmentNumber".into())
        })?;
    Ok(SegmentInfo {
        number,
        label: get_str(item, tags::SEGMENT_LABEL).unwrap_or_default(),
        algorithm_type: get_str(item, tags::SEGMENT_ALGORITHM_TYPE).unwrap_or_default(),
        algorithm_name: get_str(item, tags::SEGMENT_ALGORITHM_NAME),
        category: code(item, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE),
        property_type: code(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE),
    })
}

fn referenced(item: &InMemDicomObject) -> ReferencedSeries {
    ReferencedSeries {
        series_instance_uid: get_str(item, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        instances: get_items(item, tags::REFERENCED_INSTANCE_SEQUENCE)
            .iter()
            .map(|i| {
                (
                    get_str(i, tags::REFERENCED_SOP_CLASS_UID).unwrap_or_default(),
                    get_str(i, tags::REFERENCED_SOP_INSTANCE_UID).unwrap_or_default(),
                )
            })
            .collect(),
    }
}
