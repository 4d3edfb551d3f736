//! Plane shapes in pixel coordinates for the synthetic ultrasound image: rotated ellipses
//! (the head and the brain structures) and the ultrasound sector (the fan a curved probe
//! images).
//!
//! Pixel coordinates: x grows along a row (the column index), y down the image (the row
//! index), and pixel (column c, row r) has its centre at (c, r). A pixel belongs to a shape
//! when its centre does; the renderer and the ground truth use the same `contains`.

use serde::{Deserialize, Serialize};

/// A filled ellipse, possibly rotated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ellipse {
    /// Centre `[x, y]` in pixels (x = column, y = row).
    pub centre: [f64; 2],
    /// Semi-axis lengths in pixels: `[along the first axis, along the second axis]`.
    pub semi_axes: [f64; 2],
    /// Direction of the first axis in degrees, from the +x (column) direction towards +y
    /// (down the image): positive angles turn clockwise on screen. The second axis is
    /// perpendicular to it.
    pub angle_deg: f64,
}

impl Ellipse {
    /// Whether the point `(x, y)` lies inside the ellipse (boundary included).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (u, v) = self.local(x, y);
        u * u + v * v <= 1.0
    }

    /// The point `(x, y)` in the ellipse's own frame, scaled so that the boundary is the
    /// unit circle: `u` along the first axis, `v` along the second.
    pub fn local(&self, x: f64, y: f64) -> (f64, f64) {
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        (
            (dx * c + dy * s) / self.semi_axes[0],
            (-dx * s + dy * c) / self.semi_axes[1],
        )
    }

    /// The image point at ellipse coordinates `(u, v)` (the inverse of [`Ellipse::local`]):
    /// `(1, 0)` is the end of the first axis, `(0, 1)` of the second.
    pub fn point(&self, u: f64, v: f64) -> [f64; 2] {
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let (a, b) = (u * self.semi_axes[0], v * self.semi_axes[1]);
        [
            self.centre[0] + a * c - b * s,
            self.centre[1] + a * s + b * c,
        ]
    }

    /// The boundary point at parameter `t` (radians).
    pub fn boundary_point(&self, t: f64) -> [f64; 2] {
        let (s, c) = t.sin_cos();
        self.point(c, s)
    }
}

/// The image sector of a curved-array probe: the ring between two radii around the
/// apex (above the top edge, where the scan lines meet), within a half-angle either side of
/// straight down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsSector {
    /// The apex `[x, y]` in pixels (y is negative: above the image).
    pub apex: [f64; 2],
    /// Inner and outer radius in pixels: the probe face and the imaging depth.
    pub radii: [f64; 2],
    /// Half the opening angle, in degrees from straight down.
    pub half_angle_deg: f64,
}

impl UsSector {
    /// Whether the point `(x, y)` lies inside the sector (boundary included).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.apex[0], y - self.apex[1]);
        if dy <= 0.0 {
            return false;
        }
        let r = dx.hypot(dy);
        r >= self.radii[0]
            && r <= self.radii[1]
            && dx.abs().atan2(dy) <= self.half_angle_deg.to_radians()
    }

    /// The bounding box of the sector's pixels on a `rows` x `columns` image, as
    /// `[min column, min row, max column, max row]` (inclusive); `None` when no pixel
    /// centre is inside.
    pub fn pixel_bounds(&self, rows: usize, columns: usize) -> Option<[u32; 4]> {
        let mut b: Option<[u32; 4]> = None;
        for r in 0..rows {
            for c in 0..columns {
                if self.contains(c as f64, r as f64) {
                    let (c, r) = (c as u32, r as u32);
                    b = Some(match b {
                        None => [c, r, c, r],
                        Some([x0, y0, x1, y1]) => [x0.min(c), y0.min(r), x1.max(c), y1.max(r)],
                    });
                }
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_ellipse_contains_its_axis_ends() {
        let e = Ellipse {
            centre: [100.0, 50.0],
            semi_axes: [40.0, 10.0],
            angle_deg: 90.0,
        };
        // Rotated a quarter turn clockwise on screen: the long axis points down the image.
        assert!(e.contains(100.0, 89.0));
        assert!(!e.contains(100.0, 91.0));
        assert!(e.contains(109.0, 50.0));
        assert!(!e.contains(111.0, 50.0));
        let p = e.point(1.0, 0.0);
        assert!((p[0] - 100.0).abs() < 1e-9 && (p[1] - 90.0).abs() < 1e-9);
        let (u, v) = e.local(p[0], p[1]);
        assert!((u - 1.0).abs() < 1e-12 && v.abs() < 1e-12);
    }

    #[test]
    fn sector_is_a_fan_below_the_apex() {
        let s = UsSector {
            apex: [100.0, -10.0],
            radii: [20.0, 200.0],
            half_angle_deg: 45.0,
        };
        assert!(s.contains(100.0, 50.0));
        assert!(!s.contains(100.0, 5.0), "above the probe face");
        assert!(!s.contains(100.0, 191.0), "beyond the depth");
        assert!(s.contains(139.0, 30.0) && !s.contains(141.0, 30.0));
        assert!(!s.contains(100.0, -20.0));
        let [x0, y0, x1, y1] = s.pixel_bounds(300, 201).unwrap();
        assert_eq!((x0, x1), (0, 200));
        assert_eq!(y1, 190);
        assert!(y0 > 0 && y0 < 10);
    }
}
