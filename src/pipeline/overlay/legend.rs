//! The burned-in legend: a band added below the source frame, holding one line per
//! segment (a swatch in the segment's colour and its label), then the algorithm and the
//! warning that this is an AI result. A band below, not a box over the image, so the
//! legend never hides a source pixel.
//!
//! Text is drawn with the project's own 5x7 font ([`super::font`]), scaled by a whole
//! factor on wide frames, and wrapped at spaces to the frame's width.

use super::Canvas;
use super::font;

/// Colour of the legend's text.
pub const TEXT_RGB: [u8; 3] = [255, 255, 255];
/// Colour of the band behind the legend.
pub const BAND_RGB: [u8; 3] = [0, 0, 0];
/// The legend never grows past this many lines (narrow frames wrap long labels).
const MAX_LINES: usize = 24;

/// One line of the legend.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    /// A segment: a swatch in its colour, then (part of) its label.
    Segment { rgb: [u8; 3], text: String },
    /// Plain text (the continuation of a wrapped label, the algorithm, the warning).
    Text(String),
}

/// The legend laid out for one frame width.
#[derive(Debug, Clone, PartialEq)]
pub struct Legend {
    lines: Vec<Line>,
    scale: usize,
}

impl Legend {
    /// Lay out `segments` (label, colour) and the `notes` lines for frames `columns` wide.
    pub fn layout(columns: usize, segments: &[(String, [u8; 3])], notes: &[String]) -> Legend {
        let scale = (columns / 400).clamp(1, 3);
        let advance = (font::WIDTH + 1) * scale;
        let usable = columns.saturating_sub(2 * margin(scale));
        let chars = (usable / advance).max(1);
        // A segment's label starts after its swatch and one space.
        let label_chars = chars.saturating_sub(2).max(1);
        let mut lines = Vec::new();
        for (label, rgb) in segments {
            let mut parts = wrap(label, label_chars).into_iter();
            lines.push(Line::Segment {
                rgb: *rgb,
                text: parts.next().unwrap_or_default(),
            });
            lines.extend(parts.map(|p| Line::Text(format!("  {p}"))));
        }
        for note in notes {
            lines.extend(wrap(note, chars).into_iter().map(Line::Text));
        }
        lines.truncate(MAX_LINES);
        Legend { lines, scale }
    }

    /// Height of the band in pixels.
    pub fn height(&self) -> usize {
        2 * margin(self.scale) + self.lines.len() * line_height(self.scale)
    }

    /// Draw the band into `canvas` from row `top` down (rows beyond the canvas are
    /// clipped).
    pub fn draw(&self, canvas: &mut Canvas, top: usize) {
        let s = self.scale;
        for r in top..canvas.rows.min(top + self.height()) {
            for c in 0..canvas.columns {
                canvas.set(r, c, BAND_RGB);
            }
        }
        let advance = (font::WIDTH + 1) * s;
        for (i, line) in self.lines.iter().enumerate() {
            let y = top + margin(s) + i * line_height(s);
            let x = margin(s);
            match line {
                Line::Segment { rgb, text } => {
                    canvas.fill(y, x, font::HEIGHT * s, font::HEIGHT * s, *rgb);
                    draw_text(canvas, y, x + 2 * advance, text, s);
                }
                Line::Text(text) => draw_text(canvas, y, x, text, s),
            }
        }
    }
}

fn margin(scale: usize) -> usize {
    3 * scale
}

fn line_height(scale: usize) -> usize {
    (font::HEIGHT + 3) * scale
}

/// Draw `text` with its top-left corner at (`y`, `x`), each font cell `scale` pixels.
fn draw_text(canvas: &mut Canvas, y: usize, x: usize, text: &str, scale: usize) {
    let advance = (font::WIDTH + 1) * scale;
    for (i, ch) in text.chars().enumerate() {
        let left = x + i * advance;
        for row in 0..font::HEIGHT {
            for column in 0..font::WIDTH {
                if font::ink(ch, row, column) {
                    canvas.fill(
                        y + row * scale,
                        left + column * scale,
                        scale,
                        scale,
                        TEXT_RGB,
                    );
                }
            }
        }
    }
}

/// Split `text` into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let room = if used == 0 {
                width
            } else {
                width.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used == 0 {
                // A word longer than a line is split where the line ends.
                line.extend(word.drain(..width));
            }
            lines.push(std::mem::take(&mut line));
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("AI segmentation not", 15), ["AI segmentation", "not"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("a b", 1), ["a", "b"]);
    }

    #[test]
    fn the_legend_draws_swatches_and_text_in_its_band() {
        let segments = [("Brain".to_string(), [255, 0, 0])];
        let notes = ["AI segmentation - not for diagnosis alone".to_string()];
        let legend = Legend::layout(96, &segments, &notes);
        assert!(
            legend.lines.len() >= 3,
            "the warning wraps on a narrow frame"
        );
        let mut canvas = Canvas::grey(
            10 + legend.height(),
            96,
            &vec![7; (10 + legend.height()) * 96],
        );
        legend.draw(&mut canvas, 10);
        assert_eq!(
            canvas.get(9, 0),
            [7, 7, 7],
            "rows above the band are untouched"
        );
        let band: Vec<[u8; 3]> = (10..canvas.rows)
            .flat_map(|r| (0..96).map(move |c| (r, c)))
            .map(|(r, c)| canvas.get(r, c))
            .collect();
        assert!(band.contains(&[255, 0, 0]), "swatch");
        assert!(band.contains(&TEXT_RGB), "text");
        assert!(band.contains(&BAND_RGB), "background");
        assert!(!band.contains(&[7, 7, 7]), "the band covers its rows");
    }

    #[test]
    fn wide_frames_get_a_larger_font_and_the_band_is_bounded() {
        let segments = [("x".repeat(64), [1, 2, 3])];
        assert_eq!(Legend::layout(959, &segments, &[]).scale, 2);
        let narrow = Legend::layout(8, &segments, &["y".repeat(500)]);
        assert_eq!(narrow.lines.len(), MAX_LINES);
    }
}
