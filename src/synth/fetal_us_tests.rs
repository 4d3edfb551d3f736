//! Black-box tests of the fetal head ultrasound generator: the files are read back with
//! dicom-object and decoded with dicom-pixeldata, as a DICOM reader sees them.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, open_file};
use dicom_pixeldata::PhotometricInterpretation;
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array4, Axis};

use super::test_attrs::{float, int, text};
use super::*;
use crate::uids;

fn write(dir: &Path, seed: u64, encoding: UsEncoding, frames: u32) -> SynthUsImage {
    let params = FetalUsParams {
        seed,
        encoding,
        frames,
        ..FetalUsParams::default()
    };
    write_fetal_us(dir, &params).unwrap()
}

/// `decode_pixel_data()?.to_ndarray::<u8>()`: `[frames, rows, columns, samples]`.
fn decode(path: &Path) -> Array4<u8> {
    open_file(path)
        .unwrap()
        .decode_pixel_data()
        .unwrap()
        .to_ndarray::<u8>()
        .unwrap()
}

fn luma(p: &[u8]) -> f64 {
    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
}

#[test]
fn every_encoding_decodes_to_the_right_shape() {
    for encoding in UsEncoding::ALL {
        for frames in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let image = write(dir.path(), 5, encoding, frames);
            let pixels = decode(&image.path);
            let samples = if encoding == UsEncoding::Monochrome2 {
                1
            } else {
                3
            };
            assert_eq!(
                pixels.shape(),
                [frames as usize, 661, 959, samples],
                "{encoding}, {frames} frame(s)"
            );
            assert_eq!(
                (image.rows, image.columns, image.frames),
                (661, 959, frames)
            );
            assert_eq!(image.path, dir.path().join("US0001.dcm"));
            assert_eq!(image.truth_path, dir.path().join("truth.toml"));
            let obj = open_file(&image.path).unwrap();
            assert_eq!(obj.meta().transfer_syntax(), encoding.transfer_syntax());
            assert_eq!(image.transfer_syntax, encoding.transfer_syntax());
            assert_eq!(
                text(&obj, tags::PHOTOMETRIC_INTERPRETATION),
                encoding.photometric_interpretation()
            );
            assert_eq!(
                image.photometric_interpretation,
                encoding.photometric_interpretation()
            );
            if frames == 1 {
                assert_eq!(image.sop_class_uid, uids::US_IMAGE_STORAGE);
                assert!(obj.element(tags::NUMBER_OF_FRAMES).is_err());
                assert!(obj.element(tags::FRAME_INCREMENT_POINTER).is_err());
            } else {
                assert_eq!(image.sop_class_uid, uids::US_MULTIFRAME_IMAGE_STORAGE);
                assert_eq!(int(&obj, tags::NUMBER_OF_FRAMES), i64::from(frames));
                let pointer = obj.element(tags::FRAME_INCREMENT_POINTER).unwrap();
                assert_eq!(
                    pointer.value().primitive().unwrap(),
                    &dicom_core::PrimitiveValue::Tags([tags::FRAME_TIME].into_iter().collect())
                );
                assert!((float(&obj, tags::FRAME_TIME) - 33.3).abs() < 1e-9);
                // Same anatomy, fresh speckle in every frame.
                assert_ne!(pixels.index_axis(Axis(0), 0), pixels.index_axis(Axis(0), 1));
            }
            assert_eq!(text(&obj, tags::SOP_CLASS_UID), image.sop_class_uid);
            assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), image.sop_instance_uid);
            assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), image.study_uid);
            assert_eq!(text(&obj, tags::SERIES_INSTANCE_UID), image.series_uid);
        }
    }
}

#[test]
fn rgb_is_grey_in_the_sector_and_mono_is_its_luminance() {
    let dir = tempfile::tempdir().unwrap();
    let rgb_image = write(&dir.path().join("rgb"), 11, UsEncoding::Rgb, 1);
    let mono_image = write(&dir.path().join("mono"), 11, UsEncoding::Monochrome2, 1);
    let rgb = decode(&rgb_image.path);
    let mono = decode(&mono_image.path);
    let sector = rgb_image.truth.sector;
    let (mut coloured, mut white) = (0, 0);
    for r in 0..661 {
        for c in 0..959 {
            let p = [rgb[[0, r, c, 0]], rgb[[0, r, c, 1]], rgb[[0, r, c, 2]]];
            let grey = p[0] == p[1] && p[1] == p[2];
            if sector.contains(c as f64, r as f64) {
                assert!(grey, "pixel ({r}, {c}) in the sector is {p:?}");
            } else {
                coloured += usize::from(!grey);
                white += usize::from(p == [255, 255, 255]);
            }
            assert_eq!(
                mono[[0, r, c, 0]],
                luma(&p).round() as u8,
                "pixel ({r}, {c}): {p:?}"
            );
        }
    }
    assert!(
        coloured > 1000,
        "the colour bar is coloured ({coloured} px)"
    );
    assert!(white > 1000, "white text blocks ({white} px)");
}

#[test]
fn jpeg_decodes_to_rgb_close_to_the_uncompressed_image() {
    let dir = tempfile::tempdir().unwrap();
    let rgb_image = write(&dir.path().join("rgb"), 3, UsEncoding::Rgb, 1);
    let jpeg_image = write(&dir.path().join("jpeg"), 3, UsEncoding::JpegBaseline, 1);
    let rgb = decode(&rgb_image.path);
    let obj = open_file(&jpeg_image.path).unwrap();
    let decoded = obj.decode_pixel_data().unwrap();
    // The JPEG decoder converts YCbCr back to RGB and says so.
    assert_eq!(
        decoded.photometric_interpretation(),
        &PhotometricInterpretation::Rgb
    );
    let jpeg = decoded.to_ndarray::<u8>().unwrap();
    let sector = rgb_image.truth.sector;
    let (mut n, mut abs, mut signed, mut chroma) = (0.0, 0.0, 0.0, 0.0_f64);
    for r in 0..661 {
        for c in 0..959 {
            if !sector.contains(c as f64, r as f64) {
                continue;
            }
            let a = [rgb[[0, r, c, 0]], rgb[[0, r, c, 1]], rgb[[0, r, c, 2]]];
            let b = [jpeg[[0, r, c, 0]], jpeg[[0, r, c, 1]], jpeg[[0, r, c, 2]]];
            let d = luma(&b) - luma(&a);
            n += 1.0;
            abs += d.abs();
            signed += d;
            let spread = f64::from(*b.iter().max().unwrap()) - f64::from(*b.iter().min().unwrap());
            chroma = chroma.max(spread);
        }
    }
    let (mae, bias) = (abs / n, signed / n);
    // Measured: 3.2 grey levels at quality 85, bias -0.07, grey decodes exactly grey.
    assert!(mae < 5.0, "mean absolute luminance error {mae:.2}");
    assert!(bias.abs() < 1.0, "mean luminance bias {bias:.2}");
    assert!(
        chroma <= 4.0,
        "grey stays grey after JPEG (R, G, B spread {chroma})"
    );

    let ds: &InMemDicomObject = &obj;
    assert_eq!(obj.meta().transfer_syntax(), uids::JPEG_BASELINE);
    assert_eq!(text(ds, tags::PHOTOMETRIC_INTERPRETATION), "YBR_FULL_422");
    assert_eq!(int(ds, tags::PLANAR_CONFIGURATION), 0);
    assert_eq!(int(ds, tags::SAMPLES_PER_PIXEL), 3);
    assert_eq!(text(ds, tags::LOSSY_IMAGE_COMPRESSION), "01");
    assert_eq!(
        text(ds, tags::LOSSY_IMAGE_COMPRESSION_METHOD),
        "ISO_10918_1"
    );
    assert!(float(ds, tags::LOSSY_IMAGE_COMPRESSION_RATIO) > 2.0);
}

#[test]
fn multi_frame_jpeg_fragments_are_even_and_the_offset_table_finds_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let image = write(dir.path(), 8, UsEncoding::JpegBaseline, 4);
    let obj = open_file(&image.path).unwrap();
    let value = obj.element(tags::PIXEL_DATA).unwrap().value();
    let fragments = value.fragments().unwrap();
    let offsets = value.offset_table().unwrap();
    assert_eq!(fragments.len(), 4);
    let mut at = 0;
    for (f, &o) in fragments.iter().zip(offsets) {
        assert_eq!(f.len() % 2, 0);
        assert_eq!(&f[..2], [0xFF, 0xD8], "each fragment is one JPEG stream");
        assert_eq!(o, at);
        at += 8 + f.len() as u32;
    }
    assert_eq!(
        text(&obj, tags::LOSSY_IMAGE_COMPRESSION_METHOD),
        "ISO_10918_1"
    );
    for frame in 0..4 {
        let one = obj.decode_pixel_data_frame(frame).unwrap();
        assert_eq!(one.to_ndarray::<u8>().unwrap().shape(), [1, 661, 959, 3]);
    }
}

#[test]
fn region_calibration_replaces_pixel_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let image = write(dir.path(), 2, UsEncoding::Rgb, 1);
    let obj = open_file(&image.path).unwrap();
    for absent in [
        tags::PIXEL_SPACING,
        tags::FRAME_OF_REFERENCE_UID,
        tags::IMAGE_ORIENTATION_PATIENT,
        tags::IMAGE_POSITION_PATIENT,
    ] {
        assert!(obj.element(absent).is_err(), "{absent} must be absent");
    }
    assert_eq!(text(&obj, tags::MODALITY), "US");
    assert_eq!(text(&obj, tags::PATIENT_ORIENTATION), "");
    assert_eq!(text(&obj, tags::MANUFACTURER), "segnode synthetic");
    assert_eq!(text(&obj, tags::SERIES_DESCRIPTION), "Fetal head biometry");
    let regions = obj
        .element(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(regions.len(), 1);
    let region = &regions[0];
    assert_eq!(int(region, tags::REGION_SPATIAL_FORMAT), 1);
    assert_eq!(int(region, tags::REGION_DATA_TYPE), 1);
    assert_eq!(int(region, tags::REGION_FLAGS), 0);
    assert_eq!(int(region, tags::PHYSICAL_UNITS_X_DIRECTION), 3);
    assert_eq!(int(region, tags::PHYSICAL_UNITS_Y_DIRECTION), 3);
    assert!((float(region, tags::PHYSICAL_DELTA_X) - 0.02).abs() < 1e-12);
    assert!((float(region, tags::PHYSICAL_DELTA_Y) - 0.02).abs() < 1e-12);
    assert_eq!(image.truth.pixel_spacing_mm, [0.2, 0.2]);
    let bounds = [
        tags::REGION_LOCATION_MIN_X0,
        tags::REGION_LOCATION_MIN_Y0,
        tags::REGION_LOCATION_MAX_X1,
        tags::REGION_LOCATION_MAX_Y1,
    ]
    .map(|t| int(region, t));
    let [x0, y0, x1, y1] = image.truth.sector.pixel_bounds(661, 959).unwrap();
    assert_eq!(bounds, [x0, y0, x1, y1].map(i64::from));
    assert!(x0 < 10 && x1 > 948 && y0 < 10 && y1 == 660, "{bounds:?}");
    // The reference pixel is the apex, the physical origin.
    let apex = image.truth.sector.apex;
    assert_eq!(
        int(region, tags::REFERENCE_PIXEL_X0) + bounds[0],
        apex[0] as i64
    );
    assert_eq!(
        int(region, tags::REFERENCE_PIXEL_Y0) + bounds[1],
        apex[1] as i64
    );
}

#[test]
fn truth_round_trips_through_truth_toml() {
    let dir = tempfile::tempdir().unwrap();
    let image = write(dir.path(), 21, UsEncoding::Monochrome2, 2);
    let loaded = FetalHeadTruth::load(&image.truth_path).unwrap();
    assert_eq!(loaded, image.truth);
    assert_eq!(loaded.study_uid, image.study_uid);
    assert_eq!(loaded.sop_instance_uid, image.sop_instance_uid);
    assert_eq!((loaded.rows, loaded.columns, loaded.frames), (661, 959, 2));
    for s in FetalStructure::ALL {
        assert_eq!(loaded.mask(s), image.truth.mask(s));
    }
    let again = dir.path().join("copy.toml");
    loaded.save(&again).unwrap();
    assert_eq!(FetalHeadTruth::load(&again).unwrap(), loaded);
}

#[test]
fn structures_have_sensible_sizes_and_places() {
    use std::f64::consts::PI;
    for seed in [1, 2, 3, 4, 5, 6, 7, 8, 99, 12345] {
        let params = FetalUsParams {
            seed,
            ..FetalUsParams::default()
        };
        let t = fetal_layout::layout(&params).unwrap();
        let brain = t.mask(FetalStructure::Brain);
        let csp = t.mask(FetalStructure::Csp);
        let lv = t.mask(FetalStructure::Lv);
        for ((r, c), &b) in brain.indexed_iter() {
            assert!(!csp[[r, c]] || b, "CSP inside the brain");
            assert!(!lv[[r, c]] || b, "LV inside the brain");
            assert!(!(csp[[r, c]] && lv[[r, c]]), "CSP and LV apart");
            assert!(
                !b || t.sector.contains(c as f64, r as f64),
                "brain inside the sector"
            );
        }
        for s in FetalStructure::ALL {
            let e = t.ellipse(s);
            let area = PI * e.semi_axes[0] * e.semi_axes[1];
            let n = t.pixel_count(s) as f64;
            assert_eq!(t.mask(s).iter().filter(|&&m| m).count() as f64, n);
            assert!(
                (n - area).abs() / area < 0.02,
                "{s}: {n} px for area {area:.0}"
            );
        }
        let brain_px = t.pixel_count(FetalStructure::Brain);
        assert!((120_000..160_000).contains(&brain_px), "brain {brain_px}");
        // Head pose and inner structures relative to it.
        assert!(t.skull_outer.angle_deg.abs() <= 15.0);
        assert!((t.skull_outer.centre[0] - 479.0).abs() <= 3.0);
        assert!((t.skull_outer.centre[1] - 352.0).abs() <= 3.0);
        let (cu, cv) = t.skull_inner.local(t.csp.centre[0], t.csp.centre[1]);
        let (lu, lv_) = t.skull_inner.local(t.lv.centre[0], t.lv.centre[1]);
        assert!(
            (cu.abs() - 1.0 / 3.0).abs() < 0.01 && cv.abs() < 0.01,
            "CSP on the midline, anterior third"
        );
        assert!(lu * cu < 0.0, "LV in the posterior half");
        assert!(
            lv_ > 0.3,
            "LV off the midline, in the far (lower) hemisphere"
        );
        let skull: Vec<[f64; 2]> = (0..4096)
            .map(|i| {
                t.skull_inner
                    .boundary_point(std::f64::consts::TAU * i as f64 / 4096.0)
            })
            .collect();
        let nearest = (0..720)
            .map(|i| {
                t.lv.boundary_point(std::f64::consts::TAU * i as f64 / 720.0)
            })
            .flat_map(|p| skull.iter().map(move |q| (p[0] - q[0]).hypot(p[1] - q[1])))
            .fold(f64::INFINITY, f64::min);
        assert!(nearest >= 30.0, "LV {nearest:.1} px from the skull");
    }
}

#[test]
fn grey_levels_follow_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let image = write(dir.path(), 17, UsEncoding::Monochrome2, 4);
    let pixels = decode(&image.path);
    let t = &image.truth;
    // Mean over the frames and pixels of each compartment; speckle keeps the mean except
    // where clipping at 1 cuts the top (the skull).
    let mut sums = [(0.0, 0.0); 6];
    for r in 0..t.rows {
        for c in 0..t.columns {
            let (x, y) = (c as f64, r as f64);
            let k = if !t.sector.contains(x, y) {
                continue;
            } else if t.contains(FetalStructure::Csp, r, c) {
                0
            } else if t.contains(FetalStructure::Lv, r, c) {
                1
            } else if t.contains(FetalStructure::Brain, r, c) {
                2
            } else if t.skull_outer.contains(x, y) {
                3
            } else {
                4
            };
            for f in 0..4 {
                sums[k].0 += f64::from(pixels[[f, r, c, 0]]);
                sums[k].1 += 1.0;
            }
        }
    }
    // Skull: E[min(0.95 (1 + 0.2 N), 1)] = 0.95 - 0.19 E[(N - 0.263)+] = 0.897.
    let expected = [0.15, 0.70, 0.45, 0.897, 0.06];
    for (k, level) in expected.iter().enumerate() {
        let mean = sums[k].0 / sums[k].1 / 255.0;
        assert!(
            (mean - level).abs() < 0.01,
            "compartment {k}: mean {mean:.3}, level {level}"
        );
    }
}

#[test]
fn same_seed_same_pixels_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir.path().join("a"), 42, UsEncoding::JpegBaseline, 2);
    let b = write(&dir.path().join("b"), 42, UsEncoding::JpegBaseline, 2);
    let c = write(&dir.path().join("c"), 43, UsEncoding::JpegBaseline, 2);
    let pixel_bytes = |image: &SynthUsImage| {
        let obj: DefaultDicomObject = open_file(&image.path).unwrap();
        let value = obj.element(tags::PIXEL_DATA).unwrap().value().clone();
        value.fragments().unwrap().to_vec()
    };
    assert_eq!(pixel_bytes(&a), pixel_bytes(&b));
    assert_ne!(pixel_bytes(&a), pixel_bytes(&c));
    assert_ne!(a.sop_instance_uid, b.sop_instance_uid);
    let strip = |t: &FetalHeadTruth| FetalHeadTruth {
        study_uid: String::new(),
        sop_instance_uid: String::new(),
        ..t.clone()
    };
    assert_eq!(strip(&a.truth), strip(&b.truth));
    assert_ne!(strip(&a.truth).skull_outer, strip(&c.truth).skull_outer);
}

#[test]
fn smaller_images_scale_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let params = FetalUsParams {
        seed: 3,
        encoding: UsEncoding::Rgb,
        frames: 1,
        width: 480,
        height: 331,
    };
    let image = write_fetal_us(dir.path(), &params).unwrap();
    assert_eq!(decode(&image.path).shape(), [1, 331, 480, 3]);
    let spacing = image.truth.pixel_spacing_mm[0];
    assert!((spacing - 0.2 * 959.0 / 480.0).abs() < 1e-9, "{spacing}");
    assert!(image.truth.pixel_count(FetalStructure::Csp) > 100);
}

#[test]
fn encoding_parses_and_prints_and_bad_parameters_are_refused() {
    for e in UsEncoding::ALL {
        assert_eq!(e.to_string().parse::<UsEncoding>().unwrap(), e);
    }
    assert_eq!(
        "MONOCHROME2".parse::<UsEncoding>().unwrap(),
        UsEncoding::Monochrome2
    );
    let err = "png".parse::<UsEncoding>().unwrap_err().to_string();
    assert!(err.contains("jpeg, rgb or mono"), "{err}");
    assert_eq!(UsEncoding::default(), UsEncoding::JpegBaseline);
    let d = FetalUsParams::default();
    assert_eq!((d.width, d.height, d.frames), (959, 661, 1));
    for bad in [
        FetalUsParams {
            frames: 0,
            ..d.clone()
        },
        FetalUsParams {
            frames: 1000,
            ..d.clone()
        },
        FetalUsParams {
            width: 100,
            ..d.clone()
        },
        FetalUsParams {
            height: 70_000,
            ..d.clone()
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let err = write_fetal_us(dir.path(), &bad).unwrap_err();
        assert!(matches!(err, SynthError::InvalidParams(_)), "{err}");
    }
}
