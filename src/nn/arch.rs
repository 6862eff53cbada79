//! Architecture descriptions for `hegpu train --arch`: layers separated by spaces, each a kind
//! and its sizes separated by colons. The CryptoNets network is
//! `pad:1:0:1:0 conv:5:5:2 square dense:100 square dense:10`.
//!
//! | layer | meaning |
//! |---|---|
//! | `conv:MAPS:K[:STRIDE[:PAD]]` | a K×K convolution to MAPS channels |
//! | `dense:N` | a dense layer to N outputs (flattening first when needed) |
//! | `avgpool:K[:STRIDE]`, `sumpool:K[:STRIDE]` | pooling over K×K windows (stride K by default) |
//! | `pad:P` or `pad:TOP:BOTTOM:LEFT:RIGHT` | zero padding |
//! | `flatten` | to one dimension |
//! | `square` | x² |
//! | `poly:C0:C1:…:Cd` | C0 + C1·x + … + Cd·x^d, any degree |
//! | `relu`, `sigmoid`, `tanh`, `silu` | for training; `--approx` replaces them with polynomials after |
//!
//! Weights start at zero: [`initialize`](super::initialize) fills them.

use super::layer::{
    Activation, AvgPool, Conv2d, Dense, Flatten, Layer, Pad2d, Polynomial, Square, SumPool, limits,
};
use super::model::Model;
use crate::{Error, Result};

/// The model that `text` describes, for inputs of `input` shape, weights zero.
pub fn parse_architecture(text: &str, input: &[usize]) -> Result<Model> {
    let mut model = Model {
        input: input.to_vec(),
        layers: Vec::new(),
    };
    let mut shape = input.to_vec();
    for (i, text) in text.split_whitespace().enumerate() {
        let mut parts = text.split(':');
        let token = Token {
            i,
            text,
            kind: parts.next().unwrap_or_default(),
            numbers: parts.collect(),
        };
        for layer in token.layers(&shape)? {
            shape = layer
                .output_shape(&shape)
                .map_err(|e| token.bad(e.to_string()))?;
            model.layers.push(layer);
        }
    }
    if model.layers.is_empty() {
        return Err(Error::Config("the architecture has no layers".into()));
    }
    model.shapes()?;
    Ok(model)
}

/// One layer's description: `kind:number:number…`, the `i`-th of the architecture.
struct Token<'a> {
    i: usize,
    text: &'a str,
    kind: &'a str,
    numbers: Vec<&'a str>,
}

impl Token<'_> {
    fn bad(&self, why: String) -> Error {
        Error::Config(format!(
            "architecture layer {} '{}': {why} (see hegpu train --help)",
            self.i, self.text
        ))
    }

    /// The numbers, as sizes.
    fn sizes(&self) -> Result<Vec<usize>> {
        self.numbers
            .iter()
            .map(|n| {
                n.parse::<usize>()
                    .ok()
                    .filter(|&v| v <= limits::DIMENSION)
                    .ok_or_else(|| self.bad(format!("'{n}' is not a size")))
            })
            .collect()
    }

    /// The sizes, `low` to `high` of them.
    fn arity(&self, low: usize, high: usize) -> Result<Vec<usize>> {
        let s = self.sizes()?;
        if (low..=high).contains(&s.len()) {
            Ok(s)
        } else {
            Err(self.bad(format!("takes {low} to {high} sizes")))
        }
    }

    /// The layers it stands for after a tensor of `shape` (a dense layer flattens first).
    fn layers(&self, shape: &[usize]) -> Result<Vec<Layer>> {
        let mut layers = Vec::new();
        match self.kind {
            "conv" => {
                let s = self.arity(2, 4)?;
                let (maps, kernel) = (s[0], s[1]);
                let in_channels = *shape
                    .first()
                    .filter(|_| shape.len() == 3)
                    .ok_or_else(|| self.bad(format!("a convolution of a {shape:?} tensor")))?;
                layers.push(Layer::Conv2d(Conv2d {
                    in_channels,
                    out_channels: maps,
                    kernel,
                    stride: s.get(2).copied().unwrap_or(1),
                    padding: s.get(3).copied().unwrap_or(0),
                    weight: vec![0.0; maps * in_channels * kernel * kernel],
                    bias: vec![0.0; maps],
                }));
            }
            "dense" => {
                let outputs = self.arity(1, 1)?[0];
                if shape.len() > 1 {
                    layers.push(Layer::Flatten(Flatten));
                }
                layers.push(Layer::Dense(Dense::zeros(shape.iter().product(), outputs)));
            }
            "avgpool" | "sumpool" => {
                let s = self.arity(1, 2)?;
                let (window, stride) = (s[0], s.get(1).copied().unwrap_or(s[0]));
                layers.push(if self.kind == "avgpool" {
                    Layer::AvgPool(AvgPool { window, stride })
                } else {
                    Layer::SumPool(SumPool { window, stride })
                });
            }
            "pad" => {
                let s = self.sizes()?;
                let [top, bottom, left, right] = match s[..] {
                    [p] => [p; 4],
                    [t, b, l, r] => [t, b, l, r],
                    _ => return Err(self.bad("takes 1 or 4 sizes".into())),
                };
                layers.push(Layer::Pad2d(Pad2d {
                    top,
                    bottom,
                    left,
                    right,
                }));
            }
            "flatten" => {
                self.arity(0, 0)?;
                layers.push(Layer::Flatten(Flatten));
            }
            "square" => {
                self.arity(0, 0)?;
                layers.push(Layer::Square(Square));
            }
            "poly" => {
                let coefficients = self
                    .numbers
                    .iter()
                    .map(|n| {
                        n.parse::<f32>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .ok_or_else(|| self.bad(format!("'{n}' is not a number")))
                    })
                    .collect::<Result<Vec<f32>>>()?;
                layers.push(Layer::Polynomial(Polynomial {
                    range: 1.0,
                    coefficients,
                }));
            }
            name => match Activation::from_name(name) {
                Some(f) => {
                    self.arity(0, 0)?;
                    layers.push(Layer::from(f));
                }
                None => return Err(self.bad(format!("unknown layer kind '{name}'"))),
            },
        }
        Ok(layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::cryptonets;

    #[test]
    fn the_cryptonets_description_builds_the_cryptonets_network() {
        let model = parse_architecture(
            "pad:1:0:1:0 conv:5:5:2 square dense:100 square dense:10",
            &[1, 28, 28],
        )
        .unwrap();
        assert_eq!(model, cryptonets(5, 100));
    }

    #[test]
    fn every_kind_parses_and_mistakes_are_named() {
        let model = parse_architecture(
            "conv:4:3:1:1 poly:0.1:0.5:0.2:0.05 avgpool:2 relu sumpool:2:1 flatten dense:10 silu",
            &[1, 8, 8],
        )
        .unwrap();
        assert_eq!(model.shapes().unwrap().last().unwrap(), &vec![10]);
        for (bad, says) in [
            ("conv:4", "takes 2 to 4 sizes"),
            ("dense:ten", "'ten' is not a size"),
            ("gelu", "unknown layer kind 'gelu'"),
            ("poly:1:x", "'x' is not a number"),
            ("dense:10 conv:3:3", "a convolution of a [10] tensor"),
            ("avgpool:9", "window 9"),
            ("", "no layers"),
        ] {
            let e = parse_architecture(bad, &[1, 8, 8]).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
