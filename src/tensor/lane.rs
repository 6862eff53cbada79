//! One device the scheduler uses: its evaluator (evaluation keys uploaded there) and the layer
//! weights and diagonals prepared there, and the resident way of running a plan: every tensor
//! on this device, each linear stage in chunks of [`CHUNK`] outputs.

use super::plan::LayerPlan;
use super::report::StageReport;
use super::work::{CHUNK, Work};
use crate::Result;
use crate::backend::{Backend, PolyBatch, SparseWeights, TransferCounts};
use crate::circuits::{
    DiagonalWork, EncodedMap, LinearWork, PolynomialWork, PowersWork, finish_linear, linear_output,
    polynomial, powers, ranges, square_relin_rescale,
};
use crate::ckks::{CipherMeta, Ciphertext, Encoder, EvaluationKeys, Evaluator, Parameters};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Weights prepared on a device, by plan, stage, range of outputs and range of inputs. A stage
/// keeps one set of pieces: preparing a piece drops the cached ones it overlaps (a streamed
/// stage's chunks change with the memory budget, and stale ones would hold device memory).
type WeightCache = HashMap<WeightKey, Arc<SparseWeights>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct WeightKey {
    plan: u64,
    stage: usize,
    rows: (usize, usize),
    columns: (usize, usize),
}

impl WeightKey {
    fn overlaps(&self, other: &WeightKey) -> bool {
        let meet = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        self.plan == other.plan
            && self.stage == other.stage
            && meet(self.rows, other.rows)
            && meet(self.columns, other.columns)
    }
}

/// Makes the outputs of a range of a stage (a piece of a fused pass).
type PieceMaker<'a> = Box<dyn FnMut(&Range<usize>) -> Result<Ciphertext> + 'a>;

/// What a stage's result is handed to as it finishes (stage index, result on the device).
pub(crate) type Observer<'a> = &'a mut dyn FnMut(usize, &Ciphertext);

/// What is prepared on one device for plans, whatever the keys: weights and encoded diagonal
/// maps (plaintexts). Every lane on the device may share it, since plans and works have
/// process-unique ids.
#[derive(Default)]
pub(crate) struct Prepared {
    weights: Mutex<WeightCache>,
    /// Diagonal maps encoded on this device, by [`DiagonalWork::id`].
    diagonals: Mutex<HashMap<u64, Arc<EncodedMap>>>,
}

impl Prepared {
    /// Weights and encoded diagonal maps held.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize) {
        let weights = self.weights.lock().unwrap_or_else(|p| p.into_inner()).len();
        let diagonals = self
            .diagonals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (weights, diagonals)
    }
}

pub(crate) struct Lane {
    pub ev: Evaluator,
    encoder: Encoder,
    prepared: Arc<Prepared>,
}

impl Lane {
    /// A lane for `keys` on `backend`, preparing into (and reusing) `prepared`.
    pub fn new(
        params: &Arc<Parameters>,
        keys: &EvaluationKeys,
        backend: Arc<dyn Backend>,
        prepared: Arc<Prepared>,
    ) -> Result<Self> {
        Ok(Self {
            ev: Evaluator::new(params, backend, keys)?,
            encoder: Encoder::new(params),
            prepared,
        })
    }

    /// What this lane prepares into.
    #[cfg(test)]
    pub fn prepared(&self) -> &Arc<Prepared> {
        &self.prepared
    }

    pub fn backend(&self) -> &dyn Backend {
        &**self.ev.backend()
    }

    /// Transfers so far (zero on the CPU).
    pub fn counts(&self) -> TransferCounts {
        self.backend()
            .gpu_stats()
            .map(|s| s.counts)
            .unwrap_or_default()
    }

    /// Rows `range` of stage `stage` over its inputs `columns` (all when None; renumbered from
    /// 0, the bias with the first inputs only), prepared on this device once.
    fn weights(
        &self,
        plan: &LayerPlan,
        stage: usize,
        work: &LinearWork,
        (range, columns): (&Range<usize>, Option<&Range<usize>>),
    ) -> Result<Arc<SparseWeights>> {
        let all = 0..work.inputs;
        let columns = columns.unwrap_or(&all);
        let key = WeightKey {
            plan: plan.id,
            stage,
            rows: (range.start, range.end),
            columns: (columns.start, columns.end),
        };
        if let Some(w) = self.cache().get(&key) {
            return Ok(w.clone());
        }
        let ring = work.input_ring(self.ev.params())?;
        let rows = if *columns == all {
            work.restrict(range, None, true)
        } else {
            let block: Vec<usize> = columns.clone().collect();
            work.restrict(range, Some(&block), columns.start == 0)
        };
        let w = Arc::new(self.backend().upload_sparse(&ring, columns.len(), &rows)?);
        let mut cache = self.cache();
        cache.retain(|cached, _| !cached.overlaps(&key));
        cache.insert(key, w.clone());
        Ok(w)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, WeightCache> {
        self.prepared
            .weights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Outputs `range` of a linear stage from `grouped` (all of input `x`'s ciphertexts as
    /// polynomials of the doubled ring, on this device), finished (rescaled, squared).
    pub fn linear_range(
        &self,
        plan: &LayerPlan,
        stage: usize,
        work: &LinearWork,
        x: CipherMeta,
        grouped: &PolyBatch,
        range: &Range<usize>,
    ) -> Result<Ciphertext> {
        let weights = self.weights(plan, stage, work, (range, None))?;
        let ring = self.ev.params().ring_q(work.level)?;
        let polys = self.backend().linear_sparse(&weights, grouped)?;
        let linear = linear_output(x, work, polys.regroup(ring)?, range.len())?;
        finish_linear(&self.ev, work, linear)
    }

    /// `work` on `x` (on this device), its diagonals encoded here once.
    pub fn diagonal(&self, work: &DiagonalWork, x: &Ciphertext) -> Result<Ciphertext> {
        let cached = self
            .prepared
            .diagonals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&work.id())
            .cloned();
        let encoded = match cached {
            Some(e) => e,
            None => {
                let e = Arc::new(work.encode(&self.encoder, &self.ev)?);
                self.prepared
                    .diagonals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(work.id(), e.clone());
                e
            }
        };
        work.apply(&self.ev, (&self.encoder, &encoded), x)
    }

    /// Runs `plan` with every tensor on this device; a report per stage goes to `reports`,
    /// each stage's result to `each`.
    pub fn run_resident(
        &self,
        plan: &LayerPlan,
        mut x: Ciphertext,
        reports: &mut Vec<StageReport>,
        each: Observer<'_>,
    ) -> Result<Ciphertext> {
        let mut s = 0;
        while s < plan.stages.len() {
            if let Some(Work::Linear(w)) = plan.stages.get(s + 1)
                && self.fuses(&plan.stages[s], w)
            {
                x = self.fused_with_linear(plan, s, w, x, reports)?;
                each(s + 1, &x);
                s += 2;
                continue;
            }
            let (t, before) = (Instant::now(), self.counts());
            let work = &plan.stages[s];
            let what = work.describe(x.count);
            let (y, chunks) = self.stage(plan, s, work, x)?;
            x = y;
            self.backend().sync()?;
            each(s, &x);
            reports.push(self.report(what, chunks, t.elapsed().as_secs_f64(), &before));
            s += 1;
        }
        Ok(x)
    }

    /// What a stage that ran here did: `chunks` pieces, `seconds`, the transfers since `before`.
    fn report(
        &self,
        what: String,
        chunks: usize,
        seconds: f64,
        before: &TransferCounts,
    ) -> StageReport {
        let on_gpu = self.backend().gpu_stats().is_some();
        StageReport {
            what,
            gpu_chunks: if on_gpu { chunks } else { 0 },
            cpu_chunks: if on_gpu { 0 } else { chunks },
            seconds,
            counts: self.counts().since(before),
        }
    }

    /// Stage `s` (`work`) of `plan` on `x`, with every tensor on this device: the result and the
    /// pieces it ran in.
    fn stage(
        &self,
        plan: &LayerPlan,
        s: usize,
        work: &Work,
        x: Ciphertext,
    ) -> Result<(Ciphertext, usize)> {
        Ok(match work {
            Work::Linear(w) => {
                w.check_input(&x)?;
                let meta = x.meta();
                let grouped = x.polys.regroup(&w.input_ring(self.ev.params())?)?;
                self.assemble(&ranges(w.outputs(), CHUNK), |r| {
                    self.linear_range(plan, s, w, meta, &grouped, r)
                })?
            }
            Work::Square if x.count <= CHUNK => (square_relin_rescale(&self.ev, &x)?, 1),
            Work::Square => self.assemble(&ranges(x.count, CHUNK), |r| {
                square_relin_rescale(&self.ev, &self.slice(&x, r)?)
            })?,
            Work::Powers(p) => {
                p.check_input(&x)?;
                self.assemble(&ranges(x.count, powers_piece(p)), |r| {
                    self.powers_of(p, &x, r)
                })?
            }
            Work::Polynomial(p) => {
                p.check_input(&x)?;
                self.assemble(&ranges(x.count, polynomial_piece(p)), |r| {
                    self.polynomial_of(p, &x, r)
                })?
            }
            Work::Diagonal(d) => (self.diagonal(d, &x)?, 1),
        })
    }

    /// The polynomial of values `r` of `x`.
    fn polynomial_of(
        &self,
        p: &PolynomialWork,
        x: &Ciphertext,
        r: &Range<usize>,
    ) -> Result<Ciphertext> {
        polynomial(&self.ev, &p.for_inputs(r.len()), &self.slice(x, r)?)
    }

    /// The power basis of values `r` of `x`.
    fn powers_of(&self, p: &PowersWork, x: &Ciphertext, r: &Range<usize>) -> Result<Ciphertext> {
        let part = PowersWork {
            inputs: r.len(),
            ..p.clone()
        };
        powers(&self.ev, &part, &self.slice(x, r)?)
    }

    /// Whether stage `first` and the linear map `w` after it run as one pass
    /// ([`fused_with_linear`](Self::fused_with_linear)): when the map's sums take at most half
    /// the inputs it would otherwise hold whole, and it reads them as `first` lays them out.
    /// A power basis fuses on every device; a linear stage on the host only, where its result
    /// is what bounds the job's memory (the shipped network's first stage, 317 MiB), while a
    /// GPU keeps one dispatch per stage and streams within its budget instead.
    fn fuses(&self, first: &Work, w: &LinearWork) -> bool {
        let narrows = |inputs: usize| w.inputs == inputs && 2 * w.outputs() <= w.inputs;
        match first {
            Work::Powers(p) => narrows(p.inputs * p.degree) && w.input_size() == 3,
            Work::Linear(v) => narrows(v.outputs()) && self.backend().gpu_stats().is_none(),
            _ => false,
        }
    }

    /// Stage `s` (a power basis or a linear map) and the linear map `w` after it in one pass:
    /// stage `s`'s outputs a few at a time, and their products with the map's columns added
    /// to the sums of the pieces before (the map is linear in its inputs, so the sums are the
    /// map's, word for word). Stage `s`'s result is never held whole; the key switches and
    /// NTTs are those of the two stages one after the other.
    fn fused_with_linear(
        &self,
        plan: &LayerPlan,
        s: usize,
        w: &LinearWork,
        x: Ciphertext,
        reports: &mut Vec<StageReport>,
    ) -> Result<Ciphertext> {
        // Pieces of stage s's outputs, each output's columns of the map (a value's d powers
        // are the map's inputs k·d … k·d + d − 1), and how each piece is made.
        let inputs = x.count;
        let (pieces, width, mut make): (_, _, PieceMaker) = match &plan.stages[s] {
            Work::Powers(p) => {
                p.check_input(&x)?;
                let make = move |r: &Range<usize>| self.powers_of(p, &x, r);
                (ranges(inputs, powers_piece(p)), p.degree, Box::new(make))
            }
            Work::Linear(v) => {
                v.check_input(&x)?;
                let meta = x.meta();
                let grouped = x.polys.regroup(&v.input_ring(self.ev.params())?)?;
                let make = move |r: &Range<usize>| self.linear_range(plan, s, v, meta, &grouped, r);
                (ranges(v.outputs(), CHUNK), 1, Box::new(make))
            }
            other => unreachable!("{} does not fuse", other.describe(inputs)),
        };
        let be = self.backend();
        let ring = w.input_ring(self.ev.params())?;
        let (mut first_seconds, mut first_counts) = (0.0, TransferCounts::default());
        let (t, before) = (Instant::now(), self.counts());
        let (mut sum, mut meta) = (None::<PolyBatch>, None);
        for r in &pieces {
            let (t_piece, before_piece) = (Instant::now(), self.counts());
            // No sync per piece: on a GPU the pieces' work stays queued (the split of the
            // seconds between the two reports is then the host's recording time).
            let piece = make(r)?;
            first_seconds += t_piece.elapsed().as_secs_f64();
            first_counts.add(&self.counts().since(&before_piece));
            if piece.level != w.level || piece.size != w.input_size() {
                return Err(crate::Error::Shape(format!(
                    "a linear stage over ciphertexts of {} polynomials at level {} follows a \
                     stage giving {} at level {}",
                    w.input_size(),
                    w.level,
                    piece.size,
                    piece.level
                )));
            }
            let columns = r.start * width..r.end * width;
            let weights = self.weights(plan, s + 1, w, (&(0..w.outputs()), Some(&columns)))?;
            meta.get_or_insert(piece.meta());
            let grouped = piece.polys.regroup(&ring)?;
            sum = Some(match sum {
                None => be.linear_sparse(&weights, &grouped)?,
                Some(acc) => be.linear_sparse_add(&weights, &grouped, acc)?,
            });
        }
        drop(make);
        let (sum, meta) = sum.zip(meta).expect("a stage has an output");
        let linear = linear_output(
            meta,
            w,
            sum.regroup(self.ev.params().ring_q(w.level)?)?,
            w.outputs(),
        )?;
        let y = finish_linear(&self.ev, w, linear)?;
        be.sync()?;
        let chunks = pieces.len();
        let mut first = self.report(
            plan.stages[s].describe(inputs),
            chunks,
            first_seconds,
            &before,
        );
        first.counts = first_counts;
        let mut linear = self.report(
            plan.stages[s + 1].describe(w.inputs),
            chunks,
            t.elapsed().as_secs_f64() - first_seconds,
            &before,
        );
        linear.counts = linear.counts.since(&first_counts);
        reports.extend([first, linear]);
        Ok(y)
    }

    /// Ciphertexts `range` of `x` (all limbs) as a new batch on this device.
    pub fn slice(&self, x: &Ciphertext, range: &Range<usize>) -> Result<Ciphertext> {
        let sources: Vec<Option<usize>> = (x.size * range.start..x.size * range.end)
            .map(Some)
            .collect();
        x.with_polys(
            self.backend().gather(&x.polys, &sources, 0..x.level + 1)?,
            range.len(),
        )
    }

    /// The ciphertexts `make` gives for consecutive `ranges` (from 0), laid end to end, and
    /// the number of ranges. On the host each range is copied into the result as soon as it is
    /// made and its memory goes back to the pool for the next, so a stage holds its input, its
    /// result and one range's temporaries, not also every range beside their concatenation
    /// (the shipped network's first stage: 317 MiB less at its peak). On a GPU the ranges are
    /// concatenated once made.
    fn assemble(
        &self,
        ranges: &[Range<usize>],
        mut make: impl FnMut(&Range<usize>) -> Result<Ciphertext>,
    ) -> Result<(Ciphertext, usize)> {
        let on_host = self.backend().gpu_stats().is_none();
        let Some((first_range, rest)) = ranges.split_first().filter(|_| on_host) else {
            let parts = ranges.iter().map(&mut make).collect::<Result<Vec<_>>>()?;
            return Ok((self.join(parts)?, ranges.len()));
        };
        let first = make(first_range)?;
        let (meta, ring) = (first.meta(), first.polys.ring().clone());
        let per = meta.size * ring.poly_words();
        let count = rest.last().unwrap_or(first_range).end;
        let mut words = self.backend().host_buffer(count * per);
        let mut place = |r: &Range<usize>, part: Ciphertext| -> Result<()> {
            let same = part.meta() == meta && part.count == r.len();
            let src = part.polys.host_words().filter(|_| same).ok_or_else(|| {
                crate::Error::Shape("a stage's pieces differ in form or device".into())
            })?;
            words[r.start * per..r.end * per].copy_from_slice(src);
            Ok(())
        };
        place(first_range, first)?;
        for r in rest {
            place(r, make(r)?)?;
        }
        let polys = self.backend().upload_vec(&ring, meta.size * count, words)?;
        Ok((Ciphertext::new(meta, count, polys, None)?, ranges.len()))
    }

    /// Consecutive ciphertexts on this device as one.
    pub fn join(&self, mut parts: Vec<Ciphertext>) -> Result<Ciphertext> {
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        let count = parts.iter().map(|c| c.count).sum();
        let refs: Vec<&PolyBatch> = parts.iter().map(|c| &c.polys).collect();
        parts[0].with_polys(self.backend().concat(&refs)?, count)
    }
}

/// Values whose power basis is made together: their powers (three polynomials each) stay
/// within the host pool's largest buffer, so each piece reuses the last one's memory.
fn powers_piece(p: &PowersWork) -> usize {
    (CHUNK / (2 * p.degree)).max(1)
}

/// Values whose Chebyshev basis is made together, like [`powers_piece`].
fn polynomial_piece(p: &PolynomialWork) -> usize {
    (CHUNK / (2 * p.basis_len())).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuBackend, SparseRows};
    use crate::circuits::{InputForm, Then};
    use crate::ckks::Preset;

    #[test]
    fn a_stage_keeps_one_set_of_weight_ranges() {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(1)).unwrap());
        let lane = Lane::new(&params, &EvaluationKeys::default(), cpu, Default::default()).unwrap();
        let level = params.max_level();
        let work = LinearWork {
            rows: SparseRows {
                offsets: (0..=4).collect(),
                columns: vec![0; 4],
                words: vec![1; 4 * 2 * (level + 1)],
                bias: Vec::new(),
            },
            inputs: 1,
            level,
            input: InputForm::Relinearized,
            weight_scale: 1.0,
            then: Then::Nothing,
        };
        let plan = LayerPlan::new(vec![Work::Linear(work.clone())]);
        let other = LayerPlan::new(vec![Work::Linear(work.clone())]);
        let cached = |lane: &Lane| {
            let mut keys: Vec<_> = (lane.cache().keys())
                .map(|k| (k.plan, k.stage, k.rows.0, k.rows.1))
                .collect();
            keys.sort_unstable();
            keys
        };
        for r in [0..2, 2..4] {
            lane.weights(&plan, 0, &work, (&r, None)).unwrap();
        }
        lane.weights(&other, 0, &work, (&(0..4), None)).unwrap();
        assert_eq!(cached(&lane).len(), 3);
        // Chunks of another size replace the ones they overlap, in their own plan only.
        lane.weights(&plan, 0, &work, (&(1..3), None)).unwrap();
        let (a, b) = (plan.id, other.id);
        assert_eq!(cached(&lane), vec![(a, 0, 1, 3), (b, 0, 0, 4)]);
        let again = lane.weights(&plan, 0, &work, (&(1..3), None)).unwrap();
        assert!(Arc::ptr_eq(
            &again,
            &lane.weights(&plan, 0, &work, (&(1..3), None)).unwrap()
        ));
    }
}
