//! Zero padding.

use super::check::{check_sizes, grow, spatial};
use super::{Kind, Linear, LinearRow, Role, Shape};
use crate::Result;
use serde::{Deserialize, Serialize};

/// Zero padding of each side of every channel: `[c, h, w]` → `[c, top + h + bottom, left + w +
/// right]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad2d {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Kind for Pad2d {
    fn name(&self) -> &'static str {
        "pad2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Shape> {
        let (c, h, w) = spatial(input, "Pad2d")?;
        check_sizes(&[
            ("top padding", self.top),
            ("bottom padding", self.bottom),
            ("left padding", self.left),
            ("right padding", self.right),
        ])?;
        Ok(vec![
            c,
            grow(h, self.top, self.bottom, "padded height")?,
            grow(w, self.left, self.right, "padded width")?,
        ])
    }

    fn role(&self) -> Role<'_> {
        Role::Linear(self)
    }
}

impl Linear for Pad2d {
    fn terms_per_output(&self) -> Result<usize> {
        Ok(1)
    }

    fn linear_terms(&self, input: &[usize], output: &[usize]) -> Vec<LinearRow> {
        let (h, w) = (input[1], input[2]);
        let (c, oh, ow) = (output[0], output[1], output[2]);
        let (top, left) = (self.top, self.left);
        let rows = (0..c * oh * ow).map(|o| {
            let (ch, y, x) = (o / (oh * ow), (o / ow) % oh, o % ow);
            let inside = y >= top && y < top + h && x >= left && x < left + w;
            let terms = if inside {
                vec![((ch * h + y - top) * w + x - left, 1.0)]
            } else {
                vec![]
            };
            (0.0, terms)
        });
        rows.collect()
    }
}
