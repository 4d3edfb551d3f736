//! Image-plane geometry of a synthetic series: orientation vectors, slice positions and
//! voxel centres in patient coordinates (LPS, millimetres), and DS formatting.
//!
//! Every number that ends up in a DS attribute is rounded to its written form *before* it
//! is used, so the voxel centres the phantom is rendered at are the ones a reader computes
//! from the file (`IPP + c·Δc·row + r·Δr·col`), up to floating-point rounding.

use super::Orientation;

/// A 3-vector in patient coordinates.
pub(crate) type Vec3 = [f64; 3];

/// The sampling grid of one series: `slices` parallel planes of `rows` x `cols` pixels.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    /// Number of rows (pixels along `col_dir`).
    pub rows: usize,
    /// Number of columns (pixels along `row_dir`).
    pub cols: usize,
    /// Number of slices (planes along `normal`).
    pub slices: usize,
    /// First ImageOrientationPatient vector: direction of increasing column index.
    pub row_dir: Vec3,
    /// Second ImageOrientationPatient vector: direction of increasing row index.
    pub col_dir: Vec3,
    /// `row_dir × col_dir`: direction of increasing slice index.
    pub normal: Vec3,
    /// PixelSpacing: [between rows, between columns] in mm.
    pub pixel_spacing: [f64; 2],
    /// Distance between consecutive slice centres in mm.
    pub slice_spacing: f64,
    /// ImagePositionPatient of every slice (index = position along the normal), DS-rounded.
    pub positions: Vec<Vec3>,
}

impl Grid {
    /// A grid whose voxel centres are centred on `centre`, with orientation `iop`.
    pub(crate) fn centred(
        iop: [f64; 6],
        rows: usize,
        cols: usize,
        slices: usize,
        pixel_spacing: f64,
        slice_spacing: f64,
        centre: Vec3,
    ) -> Self {
        let iop = iop.map(round_ds);
        let row_dir = [iop[0], iop[1], iop[2]];
        let col_dir = [iop[3], iop[4], iop[5]];
        let normal = normalize(cross(row_dir, col_dir));
        let pixel_spacing = round_ds(pixel_spacing);
        let slice_spacing = round_ds(slice_spacing);
        let half = |n: usize| (n as f64 - 1.0) / 2.0;
        let first = add(
            centre,
            add(
                scale(row_dir, -half(cols) * pixel_spacing),
                add(
                    scale(col_dir, -half(rows) * pixel_spacing),
                    scale(normal, -half(slices) * slice_spacing),
                ),
            ),
        );
        let positions = (0..slices)
            .map(|k| add(first, scale(normal, k as f64 * slice_spacing)).map(round_ds))
            .collect();
        Self {
            rows,
            cols,
            slices,
            row_dir,
            col_dir,
            normal,
            pixel_spacing: [pixel_spacing; 2],
            slice_spacing,
            positions,
        }
    }

    /// ImageOrientationPatient as six numbers.
    pub(crate) fn iop(&self) -> [f64; 6] {
        [
            self.row_dir[0],
            self.row_dir[1],
            self.row_dir[2],
            self.col_dir[0],
            self.col_dir[1],
            self.col_dir[2],
        ]
    }

    /// Patient coordinates of the centre of pixel (`row`, `col`) on slice `k`.
    pub(crate) fn voxel_centre(&self, k: usize, row: usize, col: usize) -> Vec3 {
        let ipp = self.positions[k];
        let c = col as f64 * self.pixel_spacing[1];
        let r = row as f64 * self.pixel_spacing[0];
        [
            ipp[0] + c * self.row_dir[0] + r * self.col_dir[0],
            ipp[1] + c * self.row_dir[1] + r * self.col_dir[1],
            ipp[2] + c * self.row_dir[2] + r * self.col_dir[2],
        ]
    }

    /// Continuous (column, row, slice) index of a patient point: the inverse of
    /// [`Grid::voxel_centre`].
    pub(crate) fn index_of(&self, p: Vec3) -> Vec3 {
        let d = sub(p, self.positions[0]);
        [
            dot(d, self.row_dir) / self.pixel_spacing[1],
            dot(d, self.col_dir) / self.pixel_spacing[0],
            dot(d, self.normal) / self.slice_spacing,
        ]
    }

    /// Half the distance between the outermost voxel centres along the row, column and
    /// slice directions (mm).
    pub(crate) fn half_extents(&self) -> Vec3 {
        [
            (self.cols - 1) as f64 * self.pixel_spacing[1] / 2.0,
            (self.rows - 1) as f64 * self.pixel_spacing[0] / 2.0,
            (self.slices - 1) as f64 * self.slice_spacing / 2.0,
        ]
    }

    /// The centre of the voxel-centre bounding box and its half extent along each patient axis.
    pub(crate) fn patient_bounds(&self) -> (Vec3, Vec3) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for k in [0, self.slices - 1] {
            for r in [0, self.rows - 1] {
                for c in [0, self.cols - 1] {
                    let p = self.voxel_centre(k, r, c);
                    for a in 0..3 {
                        lo[a] = lo[a].min(p[a]);
                        hi[a] = hi[a].max(p[a]);
                    }
                }
            }
        }
        let centre = [0, 1, 2].map(|a| (lo[a] + hi[a]) / 2.0);
        // A single slice or pixel has no extent along some axis; keep the frame finite.
        let half = [0, 1, 2]
            .map(|a| ((hi[a] - lo[a]) / 2.0).max(self.pixel_spacing[0].max(self.slice_spacing)));
        (centre, half)
    }
}

/// ImageOrientationPatient (row direction, column direction) for an orientation.
pub(crate) fn orientation_iop(o: Orientation) -> [f64; 6] {
    match o {
        Orientation::Axial => [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        Orientation::Sagittal => [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
        Orientation::Coronal => [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        Orientation::Oblique => {
            // Axial tilted 20° about the left-right axis, then 10° about the
            // anterior-posterior axis: a double-oblique plane.
            let rot = matmul(rot_y(10f64.to_radians()), rot_x(20f64.to_radians()));
            let row = matvec(rot, [1.0, 0.0, 0.0]);
            let col = matvec(rot, [0.0, 1.0, 0.0]);
            [row[0], row[1], row[2], col[0], col[1], col[2]]
        }
    }
}

/// Format a number as a DICOM DS value (at most 16 characters, no trailing zeros).
pub(crate) fn ds(v: f64) -> String {
    // Ten decimals keep direction cosines orthonormal to 1e-10; positions (up to a few
    // hundred mm) are kept to 1e-6 mm. Both fit in 16 characters.
    let decimals = if v.abs() < 10.0 { 10 } else { 6 };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    debug_assert!(s.len() <= 16, "DS too long: {s}");
    s
}

/// The value a reader gets back from [`ds`]`(v)`.
pub(crate) fn round_ds(v: f64) -> f64 {
    ds(v).parse().expect("a formatted DS parses")
}

pub(crate) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub(crate) fn normalize(a: Vec3) -> Vec3 {
    scale(a, 1.0 / dot(a, a).sqrt())
}

/// A 3x3 matrix, row-major.
pub(crate) type Mat3 = [[f64; 3]; 3];

pub(crate) fn matvec(m: Mat3, v: Vec3) -> Vec3 {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}

pub(crate) fn matmul(a: Mat3, b: Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

pub(crate) fn rot_x(t: f64) -> Mat3 {
    let (s, c) = t.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

pub(crate) fn rot_y(t: f64) -> Mat3 {
    let (s, c) = t.sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}

pub(crate) fn rot_z(t: f64) -> Mat3 {
    let (s, c) = t.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_and_round_trips() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -0.9396926207859084,
            0.7,
            123.456789123,
            -89.6499999999,
            1234.5678,
        ] {
            let s = ds(v);
            assert!(s.len() <= 16, "{s}");
            assert_eq!(ds(round_ds(v)), s);
            assert!((round_ds(v) - v).abs() < 1e-6);
        }
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(1.5), "1.5");
    }

    #[test]
    fn every_orientation_is_orthonormal_and_normals_match_spec() {
        for o in [
            Orientation::Axial,
            Orientation::Sagittal,
            Orientation::Coronal,
            Orientation::Oblique,
        ] {
            let g = Grid::centred(orientation_iop(o), 8, 8, 4, 1.0, 2.0, [0.0; 3]);
            assert!((dot(g.row_dir, g.row_dir) - 1.0).abs() < 1e-9);
            assert!((dot(g.col_dir, g.col_dir) - 1.0).abs() < 1e-9);
            assert!(dot(g.row_dir, g.col_dir).abs() < 1e-9);
        }
        let sag = Grid::centred(
            orientation_iop(Orientation::Sagittal),
            8,
            8,
            4,
            1.0,
            2.0,
            [0.0; 3],
        );
        assert_eq!(sag.normal, [-1.0, 0.0, 0.0]);
        let cor = Grid::centred(
            orientation_iop(Orientation::Coronal),
            8,
            8,
            4,
            1.0,
            2.0,
            [0.0; 3],
        );
        assert_eq!(cor.normal, [0.0, 1.0, 0.0]);
    }

    #[test]
    fn index_of_inverts_voxel_centre() {
        let g = Grid::centred(
            orientation_iop(Orientation::Oblique),
            10,
            12,
            5,
            0.7,
            1.5,
            [3.0, -2.0, 1.0],
        );
        let p = g.voxel_centre(3, 7, 2);
        let i = g.index_of(p);
        assert!(
            (i[0] - 2.0).abs() < 1e-6 && (i[1] - 7.0).abs() < 1e-6 && (i[2] - 3.0).abs() < 1e-6,
            "{i:?}"
        );
    }
}
