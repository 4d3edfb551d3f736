//! Building a [`SourceGeometry`] from the parsed headers of a series: the attributes the
//! SEG needs, read as the source wrote them, with the slices sorted along the slice normal.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::elements::{get_str, get_strs, get_u32};
use super::error::SegError;
use super::geometry::{SourceGeometry, SourceSlice, dot, parse_all};

impl SourceGeometry {
    /// Build the geometry of one series from its parsed instances (any order), sorted along
    /// the slice normal. All instances must share rows, columns and orientation.
    pub fn from_datasets<'a>(
        instances: impl IntoIterator<Item = &'a InMemDicomObject>,
    ) -> Result<SourceGeometry, SegError> {
        let instances: Vec<&InMemDicomObject> = instances.into_iter().collect();
        let first = *instances
            .first()
            .ok_or_else(|| SegError::InvalidGeometry("no source instances".into()))?;
        let dim = |ds: &InMemDicomObject, tag, name: &'static str| -> Result<u16, SegError> {
            get_u32(ds, tag)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(SegError::MissingSourceAttribute(name))
        };
        let mut geometry = SourceGeometry {
            rows: dim(first, tags::ROWS, "Rows")?,
            columns: dim(first, tags::COLUMNS, "Columns")?,
            image_orientation: get_strs(first, tags::IMAGE_ORIENTATION_PATIENT),
            pixel_spacing: get_strs(first, tags::PIXEL_SPACING),
            slice_thickness: get_str(first, tags::SLICE_THICKNESS),
            spacing_between_slices: get_str(first, tags::SPACING_BETWEEN_SLICES),
            frame_of_reference_uid: get_str(first, tags::FRAME_OF_REFERENCE_UID),
            position_reference_indicator: get_str(first, tags::POSITION_REFERENCE_INDICATOR),
            slices: Vec::with_capacity(instances.len()),
        };
        let first_iop = parse_all(&geometry.image_orientation);
        for ds in &instances {
            let uid = |tag, name| get_str(ds, tag).ok_or(SegError::MissingSourceAttribute(name));
            let slice = SourceSlice {
                sop_class_uid: uid(tags::SOP_CLASS_UID, "SOPClassUID")?,
                sop_instance_uid: uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
                series_instance_uid: uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
                image_position: get_strs(ds, tags::IMAGE_POSITION_PATIENT),
                frame_number: None,
            };
            let same_size = dim(ds, tags::ROWS, "Rows")? == geometry.rows
                && dim(ds, tags::COLUMNS, "Columns")? == geometry.columns;
            let same_orientation = match (
                &first_iop,
                parse_all(&get_strs(ds, tags::IMAGE_ORIENTATION_PATIENT)),
            ) {
                (Some(a), Some(b)) => {
                    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4)
                }
                (a, b) => a.is_none() && b.is_none(),
            };
            if !same_size || !same_orientation {
                return Err(SegError::InvalidGeometry(format!(
                    "instance {} differs from the first in size or orientation; a SEG frame grid needs one",
                    slice.sop_instance_uid
                )));
            }
            geometry.slices.push(slice);
        }
        if let Some(normal) = geometry.slice_normal() {
            let mut keyed: Vec<(f64, SourceSlice)> = geometry
                .slices
                .drain(..)
                .map(|s| {
                    (
                        parse_all(&s.image_position).map_or(f64::NAN, |p| dot(&p, &normal)),
                        s,
                    )
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            geometry.slices = keyed.into_iter().map(|(_, s)| s).collect();
        }
        geometry.check()?;
        Ok(geometry)
    }
}

#[cfg(test)]
mod tests {
    use dicom_core::VR;

    use super::*;
    use crate::pipeline::seg::elements::{obj, text, texts, us};

    fn instance(uid: &str, y: &str) -> InMemDicomObject {
        obj([
            text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.4"),
            text(tags::SOP_INSTANCE_UID, VR::UI, uid),
            text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.9"),
            text(tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.8"),
            us(tags::ROWS, &[4]),
            us(tags::COLUMNS, &[3]),
            texts(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                &["1", "0", "0", "0", "0", "-1"],
            ),
            texts(tags::PIXEL_SPACING, VR::DS, &["0.5", "0.25"]),
            texts(tags::IMAGE_POSITION_PATIENT, VR::DS, &["-10.5", y, "3"]),
            text(tags::SLICE_THICKNESS, VR::DS, "2"),
        ])
    }

    #[test]
    fn reads_verbatim_and_sorts_along_the_normal() {
        // Normal = (1,0,0) x (0,0,-1) = (0,1,0): y orders the slices.
        let a = instance("1.2.3.1", "4.00");
        let b = instance("1.2.3.2", "-2");
        let c = instance("1.2.3.3", "1");
        let g = SourceGeometry::from_datasets([&a, &b, &c]).unwrap();
        let order: Vec<&str> = g
            .slices
            .iter()
            .map(|s| s.sop_instance_uid.as_str())
            .collect();
        assert_eq!(order, ["1.2.3.2", "1.2.3.3", "1.2.3.1"]);
        assert_eq!(g.slices[2].image_position, ["-10.5", "4.00", "3"]);
        assert_eq!(g.pixel_spacing, ["0.5", "0.25"]);
        assert_eq!(g.slice_thickness.as_deref(), Some("2"));
        assert_eq!(g.frame_of_reference_uid.as_deref(), Some("1.2.8"));
        assert_eq!((g.rows, g.columns), (4, 3));
    }

    #[test]
    fn rejects_mixed_orientations() {
        let a = instance("1.2.3.1", "0");
        let mut b = instance("1.2.3.2", "1");
        b.put(texts(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            &["0", "1", "0", "0", "0", "-1"],
        ));
        assert!(SourceGeometry::from_datasets([&a, &b]).is_err());
        assert!(SourceGeometry::from_datasets([]).is_err());
    }
}
