//! The patient geometry of a voxel array: where voxel `[slice, row, col]` lies in patient
//! coordinates (mm, DICOM LPS), and back.
//!
//! Index convention: integer indices are voxel *centres*; voxel `[0, 0, 0]` is centred on
//! the ImagePositionPatient of the first slice (DICOM: IPP is the centre of the first
//! transmitted pixel). A voxel occupies `[i - 0.5, i + 0.5]` along each axis.

/// Patient geometry of a `[slice, row, col]` voxel array.
///
/// `voxel_to_patient([k, r, c]) = origin + k·spacing[0]·normal + r·spacing[1]·col_dir
/// + c·spacing[2]·row_dir`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Centre of voxel `[0, 0, 0]`: the ImagePositionPatient of the first slice along the
    /// normal (mm).
    pub origin: [f64; 3],
    /// Direction in which the *column index* grows, i.e. along a row: the first three
    /// ImageOrientationPatient values.
    pub row_dir: [f64; 3],
    /// Direction in which the *row index* grows, i.e. down a column: the last three
    /// ImageOrientationPatient values.
    pub col_dir: [f64; 3],
    /// Unit slice normal `row_dir × col_dir`; the slice index grows along it.
    pub normal: [f64; 3],
    /// Voxel size (mm) as `[slice, row, col]`: centre-to-centre slice spacing, then
    /// PixelSpacing\[0\] (between rows), PixelSpacing\[1\] (between columns).
    pub spacing: [f64; 3],
    /// Array shape `[slices, rows, cols]`.
    pub shape: [usize; 3],
    /// FrameOfReferenceUID the patient coordinates belong to.
    pub frame_of_reference_uid: String,
}

/// A 3x3 matrix, row-major.
pub(crate) type Mat3 = [[f64; 3]; 3];

impl Grid {
    /// Patient-space step of one voxel along each index axis: `axes()[a]` is the vector
    /// added to the position when index `a` (0 slice, 1 row, 2 col) grows by one.
    pub fn axes(&self) -> [[f64; 3]; 3] {
        [
            scale(self.normal, self.spacing[0]),
            scale(self.col_dir, self.spacing[1]),
            scale(self.row_dir, self.spacing[2]),
        ]
    }

    /// Patient position (mm) of a continuous voxel index `[slice, row, col]`.
    pub fn voxel_to_patient(&self, idx: [f64; 3]) -> [f64; 3] {
        let a = self.axes();
        let mut p = self.origin;
        for (axis, &i) in a.iter().zip(&idx) {
            for d in 0..3 {
                p[d] += i * axis[d];
            }
        }
        p
    }

    /// Continuous voxel index `[slice, row, col]` of a patient position (mm); the exact
    /// inverse of [`Grid::voxel_to_patient`] (also for slightly non-orthogonal cosines).
    pub fn patient_to_voxel(&self, p: [f64; 3]) -> [f64; 3] {
        let inv = self.index_from_patient_matrix();
        matvec(&inv, sub(p, self.origin))
    }

    /// Whether `other` describes the same voxel positions: same frame of reference, same
    /// shape, and the centres of the 8 corner voxels within `tol_mm` of each other (which
    /// bounds orientation, spacing and origin differences over the whole field of view).
    pub fn same_as(&self, other: &Grid, tol_mm: f64) -> bool {
        self.frame_of_reference_uid == other.frame_of_reference_uid
            && self.shape == other.shape
            && self.corner_offset_mm(other) <= tol_mm
    }

    /// Volume of one voxel, mm³.
    pub fn voxel_volume_mm3(&self) -> f64 {
        det(&self.patient_from_index_matrix()).abs()
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the grid holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short account of how `other` differs from `self`, for logs ("shape …, spacing …").
    pub fn describe_difference(&self, other: &Grid) -> String {
        let mut parts = Vec::new();
        if self.shape != other.shape {
            parts.push(format!("shape {:?} vs {:?}", other.shape, self.shape));
        }
        if (0..3).any(|a| (self.spacing[a] - other.spacing[a]).abs() > 1e-4) {
            parts.push(format!(
                "spacing {:?} mm vs {:?} mm",
                other.spacing, self.spacing
            ));
        }
        let angle = [(self.row_dir, other.row_dir), (self.col_dir, other.col_dir)]
            .iter()
            .map(|(a, b)| dot(*a, *b).clamp(-1.0, 1.0).acos().to_degrees())
            .fold(0.0, f64::max);
        if angle > 1e-3 {
            parts.push(format!("orientation differs by {angle:.2}°"));
        }
        let shift = norm(sub(other.origin, self.origin));
        if shift > 1e-3 {
            parts.push(format!("first slice {shift:.3} mm apart"));
        }
        if parts.is_empty() {
            parts.push(format!(
                "corner voxels up to {:.4} mm apart",
                self.corner_offset_mm(other)
            ));
        }
        parts.join(", ")
    }

    /// Largest distance between corresponding corner-voxel centres (infinite when the
    /// shapes differ).
    fn corner_offset_mm(&self, other: &Grid) -> f64 {
        if self.shape != other.shape {
            return f64::INFINITY;
        }
        let mut worst = 0.0_f64;
        for corner in 0..8 {
            let idx: [f64; 3] = std::array::from_fn(|a| {
                if corner >> a & 1 == 1 {
                    self.shape[a].saturating_sub(1) as f64
                } else {
                    0.0
                }
            });
            let d = norm(sub(self.voxel_to_patient(idx), other.voxel_to_patient(idx)));
            worst = worst.max(d);
        }
        worst
    }

    /// Matrix `M` with `patient = origin + M · index` (columns are [`Grid::axes`]).
    pub(crate) fn patient_from_index_matrix(&self) -> Mat3 {
        let a = self.axes();
        std::array::from_fn(|d| [a[0][d], a[1][d], a[2][d]])
    }

    /// Inverse of [`Grid::patient_from_index_matrix`].
    pub(crate) fn index_from_patient_matrix(&self) -> Mat3 {
        invert(&self.patient_from_index_matrix())
    }

    /// The affine map from this grid's indices to `source`'s indices:
    /// `source_index = A · index + b`.
    pub(crate) fn index_map_to(&self, source: &Grid) -> (Mat3, [f64; 3]) {
        let inv = source.index_from_patient_matrix();
        let a = matmul(&inv, &self.patient_from_index_matrix());
        let b = matvec(&inv, sub(self.origin, source.origin));
        (a, b)
    }
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

pub(crate) fn matvec(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| dot(m[r], v))
}

fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

fn det(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Inverse by cofactors; the grids we build have positive spacings and orthonormal
/// cosines (checked at load), so the matrix is well conditioned.
fn invert(m: &Mat3) -> Mat3 {
    let d = det(m);
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
        [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
        [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
    ];
    adj.map(|row| row.map(|v| v / d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique_grid() -> Grid {
        let (s, c) = (0.3_f64.sin(), 0.3_f64.cos());
        let row_dir = [c, s, 0.0];
        let col_dir = [-s, c, 0.0];
        Grid {
            origin: [-10.0, 5.0, 3.0],
            row_dir,
            col_dir,
            normal: [0.0, 0.0, 1.0],
            spacing: [1.5, 0.7, 0.8],
            shape: [10, 20, 30],
            frame_of_reference_uid: "1.2.3".into(),
        }
    }

    #[test]
    fn voxel_and_patient_are_inverse() {
        let g = oblique_grid();
        for idx in [[0.0, 0.0, 0.0], [3.5, -2.0, 17.25], [9.0, 19.0, 29.0]] {
            let back = g.patient_to_voxel(g.voxel_to_patient(idx));
            for a in 0..3 {
                assert!((back[a] - idx[a]).abs() < 1e-9, "{back:?} vs {idx:?}");
            }
        }
        // Index axes map onto the documented directions and spacings.
        let p = g.voxel_to_patient([0.0, 1.0, 0.0]);
        assert!((norm(sub(p, g.origin)) - 0.7).abs() < 1e-12);
        assert!((dot(sub(p, g.origin), g.col_dir) - 0.7).abs() < 1e-12);
        assert!((g.voxel_volume_mm3() - 1.5 * 0.7 * 0.8).abs() < 1e-12);
    }

    #[test]
    fn same_as_bounds_corner_offsets() {
        let g = oblique_grid();
        assert!(g.same_as(&g.clone(), 1e-6));
        let mut shifted = g.clone();
        shifted.origin[0] += 0.05;
        assert!(shifted.same_as(&g, 0.1));
        assert!(!shifted.same_as(&g, 0.01));
        let mut other_for = g.clone();
        other_for.frame_of_reference_uid = "1.2.4".into();
        assert!(!other_for.same_as(&g, 1.0));
        let mut finer = g.clone();
        finer.spacing[2] = 0.4;
        finer.shape[2] = 60;
        assert!(!finer.same_as(&g, 1.0));
        assert!(finer.describe_difference(&g).contains("shape"));
    }

    #[test]
    fn index_map_composes_patient_transforms() {
        let g = oblique_grid();
        let mut other = g.clone();
        other.spacing = [3.0, 1.4, 1.6];
        other.origin = [-9.0, 4.0, 2.0];
        let (a, b) = g.index_map_to(&other);
        let idx = [2.0, 7.0, 11.0];
        let direct = other.patient_to_voxel(g.voxel_to_patient(idx));
        let mapped = matvec(&a, idx);
        for d in 0..3 {
            assert!((mapped[d] + b[d] - direct[d]).abs() < 1e-9);
        }
    }
}
