//! The one error type of volume assembly, worded for the operator who reads the job log:
//! which series (and, where it helps, which file or instance) is wrong, how, and what to
//! do about it.

use std::path::PathBuf;

use crate::pipeline::seg::SegError;

/// Why a series could not be turned into a volume, or channels into one stack.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// `load_series` was called with an empty file list.
    #[error("no files were given for the series; the job selected an empty series")]
    NoFiles,

    /// `stack_channels` was called without any series.
    #[error("no series were given to stack; the pipeline selected no input channels")]
    NoChannels,

    /// A file could not be opened or parsed as DICOM.
    #[error(
        "cannot read DICOM file {path}: {reason}; the stored file is damaged or not DICOM — \
         remove it and have the sender resend the series"
    )]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The parser's explanation.
        reason: String,
    },

    /// The pixel data of a file could not be decoded.
    #[error(
        "series {series}: cannot decode the pixel data of {path} (transfer syntax {transfer_syntax}): \
         {reason}; resend the series uncompressed or in a supported transfer syntax"
    )]
    Decode {
        /// Series Instance UID of the file.
        series: String,
        /// The file that failed.
        path: PathBuf,
        /// Transfer syntax UID of the file.
        transfer_syntax: String,
        /// The decoder's explanation.
        reason: String,
    },

    /// An attribute the volume needs is absent or unparsable.
    #[error(
        "series {series}: {path} has no usable {attribute}; the series lacks patient geometry \
         and cannot be assembled into a volume"
    )]
    MissingAttribute {
        /// Series Instance UID (empty if that is what is missing).
        series: String,
        /// The file that lacks it.
        path: PathBuf,
        /// DICOM keyword of the attribute.
        attribute: &'static str,
    },

    /// The files given as one series belong to several series.
    #[error(
        "{path} belongs to series {found}, not to series {expected}; the job mixed the \
         instances of two series — check the channel selection rules"
    )]
    MixedSeries {
        /// Series of the first file.
        expected: String,
        /// Series of the offending file.
        found: String,
        /// The offending file.
        path: PathBuf,
    },

    /// The same SOP instance was given twice.
    #[error(
        "series {series}: instance {instance} was given twice ({first} and {second}); \
         remove the duplicate file from the spool"
    )]
    DuplicateInstance {
        /// Series Instance UID.
        series: String,
        /// SOP Instance UID that repeats.
        instance: String,
        /// First file holding it.
        first: PathBuf,
        /// Second file holding it.
        second: PathBuf,
    },

    /// The series uses something volume assembly does not handle.
    #[error("series {series}: {reason}")]
    Unsupported {
        /// Series Instance UID.
        series: String,
        /// What is not supported and what to send instead.
        reason: String,
    },

    /// One instance differs from the first in a property every slice must share.
    #[error(
        "series {series}: {what} of {path} is {found} but the first instance has {expected}; \
         the series mixes acquisitions — select another series or fix the routing"
    )]
    Inconsistent {
        /// Series Instance UID.
        series: String,
        /// Which property (for example "PixelSpacing").
        what: &'static str,
        /// Value of the first instance.
        expected: String,
        /// Value of the offending instance.
        found: String,
        /// The offending file.
        path: PathBuf,
    },

    /// The slice geometry was rejected by the shared SEG geometry checks (for example two
    /// slices at the same position).
    #[error("series {series}: {source}")]
    Geometry {
        /// Series Instance UID.
        series: String,
        /// The geometry check that failed.
        #[source]
        source: SegError,
    },

    /// Two neighbouring slices are further apart (or closer) than the series' spacing:
    /// usually a slice is missing.
    #[error(
        "series {series}: slices {after} and {} of {slices} are {found_mm:.3} mm apart \
         (at {position_mm:.3} mm along the slice normal) but the series spacing is \
         {expected_mm:.3} mm; {hint}",
        after + 1
    )]
    SliceGap {
        /// Series Instance UID.
        series: String,
        /// Slice spacing of the rest of the series (the median gap), mm.
        expected_mm: f64,
        /// The deviating gap, mm.
        found_mm: f64,
        /// 1-based index (along the normal) of the slice before the gap.
        after: usize,
        /// Number of slices received.
        slices: usize,
        /// Position of the slice before the gap along the normal, mm.
        position_mm: f64,
        /// What the operator should do.
        hint: String,
    },

    /// Slice positions do not lie on a line along the slice normal.
    #[error(
        "series {series}: slice {slice} is offset {offset_mm:.3} mm within the image plane \
         from the line of the first slice along the normal; sheared or gantry-tilted stacks \
         are not supported — reformat the series to an orthogonal stack"
    )]
    Sheared {
        /// Series Instance UID.
        series: String,
        /// 1-based index along the normal of the first offending slice.
        slice: usize,
        /// In-plane offset, mm.
        offset_mm: f64,
    },

    /// Two channels are in different frames of reference, so no geometry relates them.
    #[error(
        "series {series} is in frame of reference {series_frame} but the reference series \
         {reference} is in {reference_frame}; channels must come from one acquisition \
         session — check the channel selection rules"
    )]
    FrameOfReference {
        /// Reference (channel 0) series.
        reference: String,
        /// Its FrameOfReferenceUID.
        reference_frame: String,
        /// The other series.
        series: String,
        /// Its FrameOfReferenceUID.
        series_frame: String,
    },

    /// A channel that needed resampling does not cover any voxel of the reference grid.
    #[error(
        "series {series} does not overlap the reference series {reference} anywhere; it \
         cannot be resampled onto the reference grid — check the channel selection rules"
    )]
    NoOverlap {
        /// Reference (channel 0) series.
        reference: String,
        /// The other series.
        series: String,
    },
}
