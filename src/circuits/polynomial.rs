//! Polynomials in the Chebyshev basis, `p(u) = Σ_k a_k T_k(u)` for u in [−1, 1], evaluated
//! into one ciphertext per value by baby steps and giant steps.
//!
//! The baby steps T_1 … T_m (m a power of two) and the giant steps T_2m, T_4m, … come from
//! `T_(a+b) = 2·T_a·T_b − T_|a−b|`, each relinearized and rescaled. A polynomial of degree at
//! most m is a sum of baby steps with its coefficients as integer weights, one rescale; one of
//! higher degree is divided by the largest giant step G below its degree, `p = q + T_G·r`
//! (in the Chebyshev basis: `r_0 = p_G`, `r_(i−G) = 2·p_i` and `q_(2G−i) −= p_i` for i > G),
//! and `q` and `r` are evaluated the same way, `r` one level higher so that its product with
//! T_G lands on `q`'s level and scale. Every scale is fixed in advance: each sum is told the
//! level and scale it must end at and weighs every term by `target · q_(level+1) / s_term`, so
//! the result carries exactly the scale it was planned for (the weights' rounding is a relative
//! error below 2^−26, under the scheme's noise).
//!
//! The basis is what bounds the depth and the key switches; the evaluation order is chosen by
//! counting: [`PolynomialWork::plan`] runs the same recursion on levels and scales alone for
//! every baby-step size and keeps the cheapest (fewest levels, then fewest key switches, then
//! fewest constant products). In the Chebyshev basis the coefficients of an approximation stay
//! about as large as the function, where power-basis coefficients grow with the degree.

use crate::ckks::{Ciphertext, Evaluator};
use crate::{Error, Result};
use std::collections::BTreeMap;

/// A polynomial in the Chebyshev basis planned for ciphertexts at one level and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialWork {
    pub inputs: usize,
    pub level: usize,
    /// The inputs' scale.
    pub scale: f64,
    /// a_0 … a_d, the last one not zero.
    pub coefficients: Vec<f64>,
    /// Baby steps T_1 … T_baby.
    pub baby: usize,
    /// The output's scale, exactly.
    pub output_scale: f64,
    /// Where the output ends and what one value costs.
    pub cost: PolynomialCost,
    /// The chain's primes: the scales divide by them.
    primes: Vec<u32>,
}

/// What evaluating a polynomial costs per value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolynomialCost {
    /// Relinearizations.
    pub key_switches: usize,
    /// Ciphertext–ciphertext products.
    pub products: usize,
    /// Ciphertexts multiplied by an integer constant.
    pub constant_products: usize,
    /// Levels from the input to the output.
    pub levels: usize,
}

impl PolynomialWork {
    /// Plans `p(u) = Σ a_k T_k(u)` (`coefficients`: a_0 … a_d, d ≥ 1) for `inputs` ciphertexts
    /// at `(level, scale)` of two polynomials, to end at `output_scale`, with the baby-step size
    /// whose counted cost is lowest; an error when the chain (`primes`) is too short.
    pub fn plan(
        inputs: usize,
        (level, scale): (usize, f64),
        coefficients: &[f64],
        output_scale: f64,
        primes: &[u32],
    ) -> Result<Self> {
        let mut a = coefficients.to_vec();
        while a.len() > 1 && a.last() == Some(&0.0) {
            a.pop();
        }
        let d = a.len() - 1;
        if d == 0 || a.iter().any(|c| !c.is_finite()) {
            return Err(Error::Config(format!(
                "a Chebyshev polynomial of degree {d} with finite coefficients: 1 at least"
            )));
        }
        let mut best: Option<(PolynomialCost, usize)> = None;
        let mut refusal = None;
        // Baby steps 2, 4, … up to the first size that holds the whole degree.
        let mut m = 1;
        while m == 1 || m < d {
            m *= 2;
            let mut dry = Dry {
                primes,
                cost: PolynomialCost::default(),
            };
            match run(&mut dry, (level, scale), &a, m, output_scale) {
                Ok(out) => {
                    let mut cost = dry.cost;
                    cost.levels = level - out.0;
                    let key = |c: &PolynomialCost| (c.levels, c.key_switches, c.constant_products);
                    if best.is_none_or(|(b, _)| key(&cost) < key(&b)) {
                        best = Some((cost, m));
                    }
                }
                Err(e) => refusal = Some(e),
            }
        }
        let (cost, baby) = best.ok_or_else(|| refusal.expect("one size was tried"))?;
        Ok(Self {
            inputs,
            level,
            scale,
            coefficients: a,
            baby,
            output_scale,
            cost,
            primes: primes.to_vec(),
        })
    }

    /// The counted cost of the order [`plan`](Self::plan) picks for `coefficients` on a chain
    /// long enough for it: levels and key switches depend on the degree and on which
    /// coefficients are zero, not on the primes.
    pub fn counted(coefficients: &[f64]) -> Result<PolynomialCost> {
        let chain = vec![1 << 30; 2 * coefficients.len().max(2).ilog2() as usize + 4];
        let top = chain.len() - 1;
        let scale = f64::from(1u32 << 30);
        Ok(Self::plan(1, (top, scale), coefficients, scale, &chain)?.cost)
    }

    /// Ciphertexts per value the basis holds while the work runs (T_1 … T_baby and the giant
    /// steps), besides the sums under way.
    pub fn basis_len(&self) -> usize {
        let d = self.degree();
        let giants = (giant_below(d, self.baby) / self.baby).trailing_zeros() as usize;
        self.baby.min(d) + giants
    }

    /// The same work for `inputs` ciphertexts (a piece of a stage).
    pub fn for_inputs(&self, inputs: usize) -> Self {
        Self {
            inputs,
            ..self.clone()
        }
    }

    /// The degree.
    pub fn degree(&self) -> usize {
        self.coefficients.len() - 1
    }

    /// The output's level.
    pub fn output_level(&self) -> usize {
        self.level - self.cost.levels
    }

    /// Checks that the work fits `x`.
    pub(crate) fn check_input(&self, x: &Ciphertext) -> Result<()> {
        if x.count() != self.inputs || x.level() != self.level || x.size() != 2 {
            return Err(Error::Shape(format!(
                "a polynomial over {} ciphertexts at level {} was given {} of {} polynomials at \
                 level {}",
                self.inputs,
                self.level,
                x.count(),
                x.size(),
                x.level()
            )));
        }
        if ((x.scale() - self.scale) / self.scale).abs() > 1e-9 {
            return Err(Error::Mismatch(format!(
                "a polynomial planned for scale {:e} was given scale {:e}",
                self.scale,
                x.scale()
            )));
        }
        Ok(())
    }
}

/// p(u) of every ciphertext of `x` (see [`PolynomialWork`]): one ciphertext of two polynomials
/// per value at the work's output level, labelled with its output scale.
pub fn polynomial(ev: &Evaluator, work: &PolynomialWork, x: &Ciphertext) -> Result<Ciphertext> {
    work.check_input(x)?;
    let mut live = Live {
        ev,
        primes: &work.primes,
    };
    let y = run(
        &mut live,
        ev.drop_level(x, x.level())?,
        &work.coefficients,
        work.baby,
        work.output_scale,
    )?;
    debug_assert_eq!(y.level(), work.output_level());
    Ok(y)
}

/// `p` in the Chebyshev basis at `u` (Clenshaw's recurrence): the f64 reference.
pub fn chebyshev_value(a: &[f64], u: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &c in a.iter().skip(1).rev() {
        (b1, b2) = (2.0 * u * b1 - b2 + c, b1);
    }
    a.first().copied().unwrap_or(0.0) + u * b1 - b2
}

/// The Chebyshev coefficients of `Σ c_k u^k` (`c`: c_0 … c_d), from `u·T_n = (T_(n+1) +
/// T_|n−1|) / 2`.
pub fn chebyshev_from_powers(c: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; c.len().max(1)];
    // u^k in the Chebyshev basis, k = 0, 1, …
    let mut power = vec![1.0];
    for (k, &ck) in c.iter().enumerate() {
        for (t, &w) in power.iter().enumerate() {
            out[t] += ck * w;
        }
        if k + 1 < c.len() {
            let mut next = vec![0.0; power.len() + 1];
            for (n, &w) in power.iter().enumerate() {
                if n == 0 {
                    next[1] += w;
                } else {
                    next[n + 1] += w / 2.0;
                    next[n - 1] += w / 2.0;
                }
            }
            power = next;
        }
    }
    out
}

/// The arithmetic the evaluation order needs, on ciphertexts ([`Live`]) or on their levels and
/// scales alone ([`Dry`], which counts): one recursion plans and evaluates.
trait Arith {
    type Ct;
    fn at(&self, x: &Self::Ct) -> (usize, f64);
    /// The chain's prime q_level.
    fn prime(&self, level: usize) -> u32;
    /// `2·a·b − c` (`None`: the constant 1), relinearized and rescaled.
    fn chebyshev(&mut self, a: &Self::Ct, b: &Self::Ct, c: Option<&Self::Ct>) -> Result<Self::Ct>;
    /// `Σ w·t + constant` ending exactly at `(level, scale)`: the terms dropped to level + 1,
    /// integer weights, one rescale.
    fn combine(
        &mut self,
        terms: &[(&Self::Ct, f64)],
        constant: f64,
        at: (usize, f64),
    ) -> Result<Self::Ct>;
    /// `a·b` relinearized and rescaled, labelled `scale` (what the plan computed for it).
    fn product(&mut self, a: &Self::Ct, b: &Self::Ct, scale: f64) -> Result<Self::Ct>;
    fn add(&mut self, a: Self::Ct, b: Self::Ct) -> Result<Self::Ct>;
    fn add_constant(&mut self, a: Self::Ct, constant: f64) -> Result<Self::Ct>;
}

fn too_deep(what: &str) -> Error {
    Error::Config(format!(
        "the chain has too few levels left for a polynomial's {what}"
    ))
}

/// Levels and scales only, with the cost counted.
struct Dry<'a> {
    primes: &'a [u32],
    cost: PolynomialCost,
}

impl Dry<'_> {
    fn rescaled(&self, level: usize, scale: f64) -> Result<(usize, f64)> {
        if level == 0 {
            return Err(too_deep("products"));
        }
        Ok((level - 1, scale / f64::from(self.primes[level])))
    }
}

impl Arith for Dry<'_> {
    type Ct = (usize, f64);
    fn at(&self, x: &Self::Ct) -> (usize, f64) {
        *x
    }
    fn prime(&self, level: usize) -> u32 {
        self.primes[level]
    }
    fn chebyshev(&mut self, a: &Self::Ct, b: &Self::Ct, c: Option<&Self::Ct>) -> Result<Self::Ct> {
        self.cost.products += 1;
        self.cost.key_switches += 1;
        self.cost.constant_products += 1 + usize::from(c.is_some());
        self.rescaled(a.0.min(b.0), a.1 * b.1)
    }
    fn combine(
        &mut self,
        terms: &[(&Self::Ct, f64)],
        _: f64,
        (level, scale): (usize, f64),
    ) -> Result<Self::Ct> {
        if terms.iter().any(|(t, _)| t.0 < level + 1) || level + 1 >= self.primes.len() {
            return Err(too_deep("sums"));
        }
        self.cost.constant_products += terms.len();
        Ok((level, scale))
    }
    fn product(&mut self, a: &Self::Ct, b: &Self::Ct, scale: f64) -> Result<Self::Ct> {
        self.cost.products += 1;
        self.cost.key_switches += 1;
        let (level, _) = self.rescaled(a.0.min(b.0), a.1 * b.1)?;
        Ok((level, scale))
    }
    fn add(&mut self, a: Self::Ct, b: Self::Ct) -> Result<Self::Ct> {
        debug_assert_eq!(a.0, b.0);
        Ok(a)
    }
    fn add_constant(&mut self, a: Self::Ct, _: f64) -> Result<Self::Ct> {
        Ok(a)
    }
}

/// On ciphertexts.
struct Live<'a> {
    ev: &'a Evaluator,
    primes: &'a [u32],
}

impl Arith for Live<'_> {
    type Ct = Ciphertext;
    fn at(&self, x: &Self::Ct) -> (usize, f64) {
        (x.level(), x.scale())
    }
    fn prime(&self, level: usize) -> u32 {
        self.primes[level]
    }
    fn chebyshev(&mut self, a: &Self::Ct, b: &Self::Ct, c: Option<&Self::Ct>) -> Result<Self::Ct> {
        let ev = self.ev;
        let at = a.level().min(b.level());
        let ab = ev.relinearize(&ev.mul(&ev.drop_level(a, at)?, &ev.drop_level(b, at)?)?)?;
        let twice = ev.mul_int(&ab, 2)?;
        let y = match c {
            None => ev.add_const(&twice, -1.0)?,
            Some(c) => {
                let mut c = ev.mul_const(&ev.drop_level(c, at)?, 1.0, twice.scale / c.scale)?;
                c.scale = twice.scale;
                ev.sub(&twice, &c)?
            }
        };
        ev.rescale(&y)
    }
    fn combine(
        &mut self,
        terms: &[(&Self::Ct, f64)],
        constant: f64,
        (level, scale): (usize, f64),
    ) -> Result<Self::Ct> {
        let ev = self.ev;
        let before = scale * f64::from(self.primes[level + 1]);
        let mut sum: Option<Ciphertext> = None;
        for &(t, w) in terms {
            let mut term = ev.mul_const(&ev.drop_level(t, level + 1)?, w, before / t.scale)?;
            term.scale = before;
            sum = Some(match sum {
                None => term,
                Some(s) => ev.add(&s, &term)?,
            });
        }
        let sum = sum.ok_or_else(|| Error::Config("a sum of no terms".into()))?;
        let sum = if constant == 0.0 {
            sum
        } else {
            ev.add_const(&sum, constant)?
        };
        let mut y = ev.rescale(&sum)?;
        y.scale = scale;
        Ok(y)
    }
    fn product(&mut self, a: &Self::Ct, b: &Self::Ct, scale: f64) -> Result<Self::Ct> {
        let ev = self.ev;
        let at = a.level().min(b.level());
        let ab = ev.mul(&ev.drop_level(a, at)?, &ev.drop_level(b, at)?)?;
        let mut y = ev.rescale(&ev.relinearize(&ab)?)?;
        debug_assert!(((y.scale - scale) / scale).abs() < 1e-9);
        y.scale = scale;
        Ok(y)
    }
    fn add(&mut self, a: Self::Ct, b: Self::Ct) -> Result<Self::Ct> {
        self.ev.add(&a, &b)
    }
    fn add_constant(&mut self, a: Self::Ct, constant: f64) -> Result<Self::Ct> {
        self.ev.add_const(&a, constant)
    }
}

/// The basis for degree `d` with baby steps up to `m`, then `p` from it, ending at the highest
/// level its order allows and at `scale`.
fn run<A: Arith>(ar: &mut A, x: A::Ct, p: &[f64], m: usize, scale: f64) -> Result<A::Ct> {
    let d = p.len() - 1;
    let mut basis: BTreeMap<usize, A::Ct> = BTreeMap::new();
    basis.insert(1, x);
    for k in 2..=m.min(d) {
        let (a, b) = (k.div_ceil(2), k / 2);
        let c = (a != b).then(|| &basis[&1]);
        let t = ar.chebyshev(&basis[&a], &basis[&b], c)?;
        basis.insert(k, t);
    }
    let mut g = m;
    while 2 * g < d {
        let t = ar.chebyshev(&basis[&g], &basis[&g], None)?;
        basis.insert(2 * g, t);
        g *= 2;
    }
    let levels: BTreeMap<usize, usize> = basis.iter().map(|(&k, t)| (k, ar.at(t).0)).collect();
    let level = highest(&levels, p, m)?;
    evaluate(ar, &basis, p, m, (level, scale))
}

/// The highest level `p` can end at (`levels`: each basis element's).
fn highest(levels: &BTreeMap<usize, usize>, p: &[f64], m: usize) -> Result<usize> {
    let d = degree(p);
    let below = |l: usize| l.checked_sub(1).ok_or_else(|| too_deep("sums"));
    if d <= m {
        let lowest = (1..=d).filter(|&k| p[k] != 0.0).map(|k| levels[&k]).min();
        return below(lowest.unwrap_or(usize::MAX));
    }
    let g = giant_below(d, m);
    let (q, r) = divide(p, g);
    let mut level = below(levels[&g])?.min(below(highest(levels, &r, m)?)?);
    if degree(&q) > 0 {
        level = level.min(highest(levels, &q, m)?);
    }
    Ok(level)
}

/// `p` at exactly `(level, scale)` from `basis`.
fn evaluate<A: Arith>(
    ar: &mut A,
    basis: &BTreeMap<usize, A::Ct>,
    p: &[f64],
    m: usize,
    (level, scale): (usize, f64),
) -> Result<A::Ct> {
    let d = degree(p);
    if d <= m {
        let terms: Vec<(&A::Ct, f64)> = (1..=d)
            .filter(|&k| p[k] != 0.0)
            .map(|k| (&basis[&k], p[k]))
            .collect();
        return ar.combine(&terms, p[0], (level, scale));
    }
    let g = giant_below(d, m);
    let (q, r) = divide(p, g);
    let tg = &basis[&g];
    let (_, s_g) = ar.at(tg);
    // r one level up, at the scale whose product with T_G rescales to (level, scale).
    let r_scale = scale * f64::from(ar.prime(level + 1)) / s_g;
    let rv = evaluate(ar, basis, &r, m, (level + 1, r_scale))?;
    let product = ar.product(tg, &rv, scale)?;
    if degree(&q) == 0 {
        return ar.add_constant(product, q[0]);
    }
    let qv = evaluate(ar, basis, &q, m, (level, scale))?;
    ar.add(qv, product)
}

/// The index of the last nonzero coefficient (0 for a constant).
fn degree(p: &[f64]) -> usize {
    p.iter().rposition(|&c| c != 0.0).unwrap_or(0)
}

/// The largest giant step `m·2^j` below `d` (m itself when d ≤ 2m).
fn giant_below(d: usize, m: usize) -> usize {
    let mut g = m;
    while 2 * g < d {
        g *= 2;
    }
    g
}

/// `p = q + T_g·r` for deg p ≤ 2g: (q, r), deg q < g.
fn divide(p: &[f64], g: usize) -> (Vec<f64>, Vec<f64>) {
    let d = degree(p);
    let mut q = p[..g.min(p.len())].to_vec();
    let mut r = vec![0.0; d - g + 1];
    r[0] = p[g];
    for i in g + 1..=d {
        r[i - g] = 2.0 * p[i];
        q[2 * g - i] -= p[i];
    }
    (q, r)
}
