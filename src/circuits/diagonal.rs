//! Linear maps within ciphertexts: plaintext diagonals times rotations of the inputs (the
//! diagonal method, for any placement of values in slots), in baby-step/giant-step form:
//!
//! `y = fold( Σ_g rot( Σ_{c,b} d_{c,b,g} ⊙ rot(x_c, b), g ) ) + bias`
//!
//! where each input `x_c` is rotated by its baby steps `b` from one decomposition (hoisted),
//! the giant rotations `g` act on sums of products (before the rescale, which divides their
//! key-switching noise by the prime), and the fold `y ← y + rot(y, f)` adds partial sums that
//! sit in different slots. Which weight goes in which diagonal is the packing's business
//! (`nn::latency` places them); this module groups the diagonals into steps, counts what a map
//! costs, and evaluates it on ciphertexts and, as the oracle, on plaintext slot vectors.

use crate::ckks::{Ciphertext, Encoder, Evaluator, Plaintext};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One product of a giant step: input `input`, rotated by its baby step `baby` (an index into
/// [`DiagonalMap::baby`]), times `diagonal` (already rotated by minus the giant step).
#[derive(Clone, Debug)]
pub struct Term {
    pub input: usize,
    pub baby: usize,
    pub diagonal: Vec<f64>,
}

/// A giant step and the products summed before it.
#[derive(Clone, Debug)]
pub struct Giant {
    pub step: i64,
    pub terms: Vec<Term>,
}

/// A planned diagonal map: what it rotates, multiplies and adds, and so what it costs.
#[derive(Clone, Debug)]
pub struct DiagonalMap {
    /// `x ← x + rot(x, r)` on the (single) input first: replication.
    pub replicate: Vec<i64>,
    /// Baby steps of each input.
    pub baby: Vec<Vec<i64>>,
    pub giants: Vec<Giant>,
    pub fold: Vec<i64>,
    /// Added after the fold and the rescale.
    pub bias: Vec<f64>,
}

/// The shape of a map besides its diagonals: see [`DiagonalMap`]'s fields.
pub struct Steps {
    pub replicate: Vec<i64>,
    pub fold: Vec<i64>,
    pub bias: Vec<f64>,
    /// Whether inputs may be rotated (hoisted baby steps); otherwise every rotation is a giant
    /// step, on products.
    pub rotate_inputs: bool,
}

impl DiagonalMap {
    /// The map that sums, for each `((input, rotation), diagonal)`, `diagonal ⊙ rot(x_input,
    /// rotation)`, with the rotations split into baby and giant steps for the fewest key
    /// switches (the step length with the fewest rotations), over `inputs` inputs of `slots` slots.
    pub fn new(
        diagonals: Vec<((usize, i64), Vec<f64>)>,
        inputs: usize,
        slots: usize,
        steps: Steps,
    ) -> Self {
        let (baby, giants) = baby_giant(diagonals, inputs, slots, steps.rotate_inputs);
        Self {
            replicate: steps.replicate,
            baby,
            giants,
            fold: steps.fold,
            bias: steps.bias,
        }
    }

    /// Every rotation step it makes (none of them 0), for the Galois keys.
    pub fn rotations(&self) -> BTreeSet<i64> {
        let giants = self.giants.iter().map(|g| g.step);
        let all = self.replicate.iter().copied();
        all.chain(self.baby.iter().flatten().copied())
            .chain(giants)
            .chain(self.fold.iter().copied())
            .filter(|&r| r != 0)
            .collect()
    }

    /// Key switches per evaluation: one per rotation made.
    pub fn key_switches(&self) -> usize {
        let nonzero = |v: &mut dyn Iterator<Item = i64>| v.filter(|&r| r != 0).count();
        nonzero(&mut self.replicate.iter().copied())
            + nonzero(&mut self.baby.iter().flatten().copied())
            + nonzero(&mut self.giants.iter().map(|g| g.step))
            + nonzero(&mut self.fold.iter().copied())
    }

    /// Plaintext products per evaluation.
    pub fn products(&self) -> usize {
        self.giants.iter().map(|g| g.terms.len()).sum()
    }

    /// The map on plaintext slot vectors: what the encrypted evaluation computes, without
    /// noise; the oracle plans are tested with. Also returns the largest magnitude any slot
    /// takes on the way (partial sums included), which the scales must leave room for.
    pub fn apply_plain(&self, inputs: &[Vec<f64>]) -> (Vec<f64>, f64) {
        let mut peak = 0.0f64;
        let mut watch = |v: &[f64]| {
            peak = v.iter().fold(peak, |m, x| m.max(x.abs()));
        };
        let mut inputs = inputs.to_vec();
        for &r in &self.replicate {
            let moved = rotate_slots(&inputs[0], r);
            add_slots(&mut inputs[0], &moved);
        }
        let rotated: Vec<Vec<Vec<f64>>> = inputs
            .iter()
            .zip(&self.baby)
            .map(|(x, steps)| steps.iter().map(|&b| rotate_slots(x, b)).collect())
            .collect();
        let s = inputs[0].len();
        let mut y = vec![0.0; s];
        for g in &self.giants {
            let mut acc = vec![0.0; s];
            for t in &g.terms {
                let x = &rotated[t.input][t.baby];
                for ((a, d), v) in acc.iter_mut().zip(&t.diagonal).zip(x) {
                    *a += d * v;
                }
            }
            watch(&acc);
            add_slots(&mut y, &rotate_slots(&acc, g.step));
        }
        for &f in &self.fold {
            watch(&y);
            let moved = rotate_slots(&y, f);
            add_slots(&mut y, &moved);
        }
        add_slots(&mut y, &self.bias);
        watch(&y);
        (y, peak)
    }

    /// The diagonals encoded at `level` and `scale` (a ciphertext at `level` comes out of the
    /// rescale at its own scale when `scale` is q_level), each slot vector passed through
    /// `expand` first (a packing that interleaves several images repeats each value).
    pub fn encode(
        &self,
        encoder: &Encoder,
        ev: &Evaluator,
        (level, scale): (usize, f64),
        expand: impl Fn(&[f64]) -> Vec<f64>,
    ) -> Result<EncodedMap> {
        let backend = ev.backend();
        let giants = self
            .giants
            .iter()
            .map(|g| {
                g.terms
                    .iter()
                    .map(|t| encoder.encode(&expand(&t.diagonal), level, scale, &**backend))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedMap {
            giants,
            bias: expand(&self.bias),
        })
    }

    /// The map on ciphertexts `xs` (one per input, at the level the map was encoded for),
    /// every rotation `stride` times the planned one (the plan's slots are every `stride`-th
    /// slot); rescaled once, the bias added after.
    pub fn evaluate(
        &self,
        ev: &Evaluator,
        (encoder, encoded): (&Encoder, &EncodedMap),
        mut xs: Vec<Ciphertext>,
        stride: i64,
    ) -> Result<Ciphertext> {
        if xs.len() != self.baby.len() || encoded.giants.len() != self.giants.len() {
            return Err(Error::Mismatch(format!(
                "a diagonal map of {} inputs and {} giant steps was given {} inputs and {} \
                 encoded steps",
                self.baby.len(),
                self.giants.len(),
                xs.len(),
                encoded.giants.len()
            )));
        }
        for &r in &self.replicate {
            let moved = ev.rotate(&xs[0], r * stride)?;
            ev.add_assign(&mut xs[0], &moved)?;
        }
        let rotated: Vec<Vec<Ciphertext>> = xs
            .iter()
            .zip(&self.baby)
            .map(|(x, steps)| {
                ev.rotate_hoisted(x, &steps.iter().map(|r| r * stride).collect::<Vec<_>>())
            })
            .collect::<Result<_>>()?;
        drop(xs);
        let mut y: Option<Ciphertext> = None;
        for (giant, pts) in self.giants.iter().zip(&encoded.giants) {
            let mut acc: Option<Ciphertext> = None;
            for (term, pt) in giant.terms.iter().zip(pts) {
                let p = ev.mul_plain(&rotated[term.input][term.baby], pt)?;
                match acc.as_mut() {
                    Some(a) => ev.add_assign(a, &p)?,
                    None => acc = Some(p),
                }
            }
            let acc = acc.ok_or_else(|| Error::Config("a giant step without products".into()))?;
            let moved = if giant.step == 0 {
                acc
            } else {
                ev.rotate(&acc, giant.step * stride)?
            };
            match y.as_mut() {
                Some(y) => ev.add_assign(y, &moved)?,
                None => y = Some(moved),
            }
        }
        let mut y = y.ok_or_else(|| Error::Config("a diagonal map without products".into()))?;
        for &f in &self.fold {
            let moved = ev.rotate(&y, f * stride)?;
            ev.add_assign(&mut y, &moved)?;
        }
        let mut y = ev.rescale(&y)?;
        if encoded.bias.iter().any(|&b| b != 0.0) {
            let pt = encoder.encode(&encoded.bias, y.level(), y.scale(), &**ev.backend())?;
            ev.add_plain_assign(&mut y, &pt)?;
        }
        Ok(y)
    }
}

/// A [`DiagonalMap`] planned for ciphertexts: the level and scale its diagonals are encoded
/// at and the stride of its slots; the unit of work the scheduler runs. Its input is
/// `inputs() × groups` ciphertexts, input-major (input c of group g at `c · groups + g`), its
/// output one ciphertext per group, one level lower.
#[derive(Clone, Debug)]
pub struct DiagonalWork {
    pub map: Arc<DiagonalMap>,
    /// Tells the encodings of different works apart (each device caches them by it).
    id: u64,
    pub level: usize,
    pub scale: f64,
    /// The plan's slots are every `stride`-th slot (that many images share a ciphertext):
    /// rotations are `stride` times the planned ones and each diagonal value fills `stride`
    /// consecutive slots.
    pub stride: usize,
}

static NEXT_WORK: AtomicU64 = AtomicU64::new(1);

impl DiagonalWork {
    pub fn new(map: Arc<DiagonalMap>, (level, scale): (usize, f64), stride: usize) -> Self {
        Self {
            map,
            id: NEXT_WORK.fetch_add(1, Ordering::Relaxed),
            level,
            scale,
            stride: stride.max(1),
        }
    }

    /// What devices cache its encoding by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Input ciphertexts per group.
    pub fn inputs(&self) -> usize {
        self.map.baby.len()
    }

    /// Ciphertexts alive at once per group while it runs besides its input: every baby-step
    /// rotation, a giant step's sum and the output.
    pub fn held_per_group(&self) -> usize {
        self.map.baby.iter().map(Vec::len).sum::<usize>() + 2
    }

    /// The diagonals encoded on `ev`'s device.
    pub fn encode(&self, encoder: &Encoder, ev: &Evaluator) -> Result<EncodedMap> {
        let k = self.stride;
        self.map.encode(encoder, ev, (self.level, self.scale), |v| {
            v.iter().flat_map(|&x| std::iter::repeat_n(x, k)).collect()
        })
    }

    /// The map on `x` (see the type's documentation), with its diagonals `encoded` on `ev`'s
    /// device.
    pub fn apply(
        &self,
        ev: &Evaluator,
        (encoder, encoded): (&Encoder, &EncodedMap),
        x: &Ciphertext,
    ) -> Result<Ciphertext> {
        let parts = self.inputs();
        if x.level() != self.level || x.count() == 0 || !x.count().is_multiple_of(parts) {
            return Err(Error::Shape(format!(
                "a diagonal map takes {parts} ciphertexts per group at level {}, got {} at \
                 level {}",
                self.level,
                x.count(),
                x.level()
            )));
        }
        let groups = x.count() / parts;
        let xs = (0..parts)
            .map(|c| ev.select(x, &(c * groups..(c + 1) * groups).collect::<Vec<_>>()))
            .collect::<Result<Vec<_>>>()?;
        self.map
            .evaluate(ev, (encoder, encoded), xs, self.stride as i64)
    }
}

/// A map's diagonals encoded on one device (see [`DiagonalMap::encode`]).
pub struct EncodedMap {
    /// Per giant step, per term.
    giants: Vec<Vec<Plaintext>>,
    /// The bias in every slot (expanded).
    bias: Vec<f64>,
}

/// `v` rotated by `k` towards slot 0: slot t gets `v[(t + k) mod S]`, what
/// [`Evaluator::rotate`] does to the slots.
pub fn rotate_slots(v: &[f64], k: i64) -> Vec<f64> {
    let s = v.len();
    let k = k.rem_euclid(s as i64) as usize;
    (0..s).map(|t| v[(t + k) % s]).collect()
}

/// `acc += v`, slot by slot.
pub fn add_slots(acc: &mut [f64], v: &[f64]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// Splits each rotation `r` (a multiple of the common stride δ) into a giant step
/// `δ·n1·⌊r/(δ·n1)⌋` and a baby step `r − giant` in `[0, δ·n1)`, with the `n1` that makes the
/// fewest rotations (babies of every input plus giants); without `rotate_inputs`, every
/// rotation is a giant step.
fn baby_giant(
    diagonals: Vec<((usize, i64), Vec<f64>)>,
    inputs: usize,
    s: usize,
    rotate_inputs: bool,
) -> (Vec<Vec<i64>>, Vec<Giant>) {
    let stride = diagonals
        .iter()
        .fold(0i64, |g, ((_, r), _)| gcd(g, r.abs()))
        .max(1);
    let split = |r: i64, n1: i64| {
        let giant = stride * n1 * (r / stride).div_euclid(n1);
        (giant, r - giant)
    };
    let cost = |n1: i64| {
        let mut babies = BTreeSet::new();
        let mut giants = BTreeSet::new();
        for ((c, r), _) in &diagonals {
            let (g, b) = split(*r, n1);
            if b != 0 {
                babies.insert((*c, b));
            }
            if g != 0 {
                giants.insert(g);
            }
        }
        babies.len() + giants.len()
    };
    let most = if rotate_inputs {
        (s as i64 / stride).max(1)
    } else {
        1
    };
    let n1 = (1..=most.min(256))
        .min_by_key(|&n1| (cost(n1), n1))
        .unwrap_or(1);
    let mut baby: Vec<Vec<i64>> = vec![Vec::new(); inputs];
    let mut giants: BTreeMap<i64, Vec<Term>> = BTreeMap::new();
    for ((c, r), d) in diagonals {
        let (g, b) = split(r, n1);
        let index = match baby[c].iter().position(|&x| x == b) {
            Some(i) => i,
            None => {
                baby[c].push(b);
                baby[c].len() - 1
            }
        };
        giants.entry(g).or_default().push(Term {
            input: c,
            baby: index,
            diagonal: rotate_slots(&d, -g),
        });
    }
    let giants = giants
        .into_iter()
        .map(|(step, terms)| Giant { step, terms })
        .collect();
    (baby, giants)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_slots_towards_zero() {
        let v: Vec<f64> = (0..8).map(f64::from).collect();
        assert_eq!(rotate_slots(&v, 1), [1., 2., 3., 4., 5., 6., 7., 0.]);
        assert_eq!(rotate_slots(&v, -3), [5., 6., 7., 0., 1., 2., 3., 4.]);
        assert_eq!(rotate_slots(&v, 8), v);
    }

    #[test]
    fn baby_and_giant_steps_cover_each_rotation_once() {
        let d = |r: i64| ((0usize, r), vec![1.0; 64]);
        let (baby, giants) = baby_giant((-4..13).map(|u| d(3 * u)).collect(), 1, 64, true);
        // 17 rotations by multiples of 3 in about 2·√17 key switches.
        let made = baby[0].iter().filter(|&&b| b != 0).count()
            + giants.iter().filter(|g| g.step != 0).count();
        assert!(made <= 8, "{made}: {baby:?}");
        let babies = &baby[0];
        let mut covered: Vec<i64> = giants
            .iter()
            .flat_map(|g| g.terms.iter().map(move |t| g.step + babies[t.baby]))
            .collect();
        covered.sort_unstable();
        assert_eq!(covered, (-4..13).map(|u| 3 * u).collect::<Vec<_>>());
    }
}
