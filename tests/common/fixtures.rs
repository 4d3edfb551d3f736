//! DICOM fixtures: synthetic MR series (`segnode::synth`), compressed copies made by DCMTK
//! or, for JPEG 2000 (no encoder in DCMTK 3.6.7), by [`super::j2k`]; and what tests read
//! back from files: transfer syntax, UIDs, decoded pixels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{InMemDicomObject, open_file};
use dicom_pixeldata::PixelDecoder;

use super::{describe, j2k, run_tool};

/// `slices` MR instances of `rows` x `cols`, 16-bit, Explicit VR Little Endian, one new
/// study and series.
pub fn mr_series(dir: &Path, slices: usize, rows: usize, cols: usize, seed: u64) -> Vec<PathBuf> {
    segnode::synth::write_mr_series(dir, slices, rows, cols, seed)
        .expect("write a synthetic MR series")
}

/// Run a DCMTK converter (`dcmcjpeg`, `dcmcjpls`, `dcmcrle`, `dcmconv` …) on every input,
/// writing `outdir/<name>`; returns the outputs in input order.
pub async fn dcmtk_convert(
    tool: &str,
    options: &[&str],
    inputs: &[PathBuf],
    outdir: &Path,
) -> Vec<PathBuf> {
    std::fs::create_dir_all(outdir).unwrap();
    let mut outputs = Vec::with_capacity(inputs.len());
    for input in inputs {
        let output = outdir.join(input.file_name().unwrap());
        let mut args: Vec<std::ffi::OsString> = options.iter().map(Into::into).collect();
        args.push(input.as_os_str().to_owned());
        args.push(output.as_os_str().to_owned());
        let run = run_tool(tool, &args, Duration::from_secs(60)).await;
        assert!(
            run.status.success(),
            "{tool} {} failed: {}",
            input.display(),
            describe(&run)
        );
        outputs.push(output);
    }
    outputs
}

/// Lossless JPEG 2000 (1.2.840.10008.1.2.4.90) copies of uncompressed grayscale inputs,
/// same UIDs; returns the outputs in input order.
pub fn j2k_convert(inputs: &[PathBuf], outdir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(outdir).unwrap();
    inputs
        .iter()
        .map(|input| {
            let obj = open_file(input).expect("read the uncompressed input");
            let px = pixels(input);
            let mut codestream =
                j2k::encode_lossless_gray(&px.values, px.rows, px.cols, u32::from(px.bits_stored));
            if codestream.len() % 2 == 1 {
                codestream.push(0);
            }
            let mut dataset: InMemDicomObject = obj.into_inner();
            dataset.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PixelFragmentSequence::new_fragments(vec![codestream]),
            ));
            let file = dataset
                .with_meta(
                    FileMetaTableBuilder::new().transfer_syntax(segnode::uids::JPEG_2000_LOSSLESS),
                )
                .expect("build the file meta");
            let output = outdir.join(input.file_name().unwrap());
            file.write_to_file(&output)
                .expect("write the JPEG 2000 copy");
            output
        })
        .collect()
}

/// The transfer syntax in a file's meta group.
pub fn transfer_syntax(path: &Path) -> String {
    let obj = open_file(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    segnode::uids::trim_uid(obj.meta().transfer_syntax()).to_string()
}

/// A text attribute of a file's data set.
pub fn attribute(path: &Path, tag: dicom_core::Tag) -> String {
    let obj = open_file(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value = obj
        .element(tag)
        .unwrap_or_else(|_| panic!("{} lacks {tag}", path.display()))
        .to_str()
        .unwrap();
    segnode::uids::trim_uid(&value).to_string()
}

/// The SOP Instance UID of a file.
pub fn sop_instance_uid(path: &Path) -> String {
    attribute(path, tags::SOP_INSTANCE_UID)
}

/// Decoded pixel data of a single-frame grayscale image.
#[derive(Debug, PartialEq, Eq)]
pub struct Pixels {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Bits Stored.
    pub bits_stored: u16,
    /// Stored values, row-major (no rescale applied).
    pub values: Vec<u16>,
}

/// Decode a file's pixel data, whatever its transfer syntax.
pub fn pixels(path: &Path) -> Pixels {
    let obj = open_file(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let decoded = obj
        .decode_pixel_data()
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()));
    assert_eq!(decoded.bits_allocated(), 16, "{}", path.display());
    assert_eq!(decoded.number_of_frames(), 1, "{}", path.display());
    Pixels {
        rows: decoded.rows(),
        cols: decoded.columns(),
        bits_stored: decoded.bits_stored(),
        values: decoded.data_ow(),
    }
}
