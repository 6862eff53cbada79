//! One device the scheduler uses: its evaluator (evaluation keys uploaded there) and the layer
//! weights and diagonals prepared there, and the resident way of running a plan: every tensor
//! on this device, each linear stage in chunks of [`CHUNK`] outputs.

use super::schedule::StageReport;
use super::work::{LayerPlan, Work};
use crate::Result;
use crate::backend::{Backend, PolyBatch, SparseWeights, TransferCounts};
use crate::circuits::{
    DiagonalWork, EncodedMap, LinearWork, PowersWork, finish_linear, linear_output, powers, ranges,
    square_relin_rescale,
};
use crate::ckks::{CipherMeta, Ciphertext, Encoder, EvaluationKeys, Evaluator, Parameters};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Outputs of a linear stage computed, rescaled and squared together when the whole tensor is
/// on one device: bounds the memory of every temporary, key switching included.
pub(crate) const CHUNK: usize = 128;

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

/// What a stage's result is handed to as it finishes (stage index, result on the device).
pub(crate) type Observer<'a> = &'a mut dyn FnMut(usize, &Ciphertext);

pub(crate) struct Lane {
    pub ev: Evaluator,
    weights: Mutex<WeightCache>,
    encoder: Encoder,
    /// Diagonal maps encoded on this device, by [`DiagonalWork::id`].
    diagonals: Mutex<HashMap<u64, Arc<EncodedMap>>>,
}

impl Lane {
    pub fn new(
        params: &Arc<Parameters>,
        keys: &EvaluationKeys,
        backend: Arc<dyn Backend>,
    ) -> Result<Self> {
        Ok(Self {
            ev: Evaluator::new(params, backend, keys)?,
            weights: Mutex::new(HashMap::new()),
            encoder: Encoder::new(params),
            diagonals: Mutex::new(HashMap::new()),
        })
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
        self.weights.lock().unwrap_or_else(|p| p.into_inner())
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
            .diagonals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&work.id())
            .cloned();
        let encoded = match cached {
            Some(e) => e,
            None => {
                let e = Arc::new(work.encode(&self.encoder, &self.ev)?);
                self.diagonals
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
            if let (Work::Powers(p), Some(Work::Linear(w))) =
                (&plan.stages[s], plan.stages.get(s + 1))
                && fuses(p, w)
            {
                x = self.powers_into_linear(plan, s, (p, w), x, reports)?;
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
                let parts = ranges(w.outputs(), CHUNK)
                    .iter()
                    .map(|r| self.linear_range(plan, s, w, meta, &grouped, r))
                    .collect::<Result<Vec<_>>>()?;
                drop(grouped);
                let chunks = parts.len();
                (self.join(parts)?, chunks)
            }
            Work::Square if x.count <= CHUNK => (square_relin_rescale(&self.ev, &x)?, 1),
            Work::Square => {
                let parts = ranges(x.count, CHUNK)
                    .iter()
                    .map(|r| square_relin_rescale(&self.ev, &self.slice(&x, r)?))
                    .collect::<Result<Vec<_>>>()?;
                let chunks = parts.len();
                (self.join(parts)?, chunks)
            }
            Work::Powers(p) => {
                p.check_input(&x)?;
                let parts = ranges(x.count, powers_piece(p))
                    .iter()
                    .map(|r| self.powers_of(p, &x, r))
                    .collect::<Result<Vec<_>>>()?;
                let chunks = parts.len();
                (self.join(parts)?, chunks)
            }
            Work::Diagonal(d) => (self.diagonal(d, &x)?, 1),
        })
    }

    /// The power basis of values `r` of `x`.
    fn powers_of(&self, p: &PowersWork, x: &Ciphertext, r: &Range<usize>) -> Result<Ciphertext> {
        let part = PowersWork {
            inputs: r.len(),
            ..p.clone()
        };
        powers(&self.ev, &part, &self.slice(x, r)?)
    }

    /// Powers stage `s` and the linear map after it in one pass: the power basis of a few
    /// values at a time, and their products with the map's columns added to the sums of the
    /// pieces before (the map is linear in its inputs, so the sums are the map's, word for
    /// word). The basis, three polynomials per power and `degree` powers per value, is never
    /// held whole; the key switches and NTTs are those of the two stages one after the other.
    fn powers_into_linear(
        &self,
        plan: &LayerPlan,
        s: usize,
        (p, w): (&PowersWork, &LinearWork),
        x: Ciphertext,
        reports: &mut Vec<StageReport>,
    ) -> Result<Ciphertext> {
        p.check_input(&x)?;
        let be = self.backend();
        let ring = w.input_ring(self.ev.params())?;
        let (mut powers_seconds, mut powers_counts) = (0.0, TransferCounts::default());
        let (t, before) = (Instant::now(), self.counts());
        let pieces = ranges(x.count, powers_piece(p));
        let (mut sum, mut meta) = (None::<PolyBatch>, None);
        for r in &pieces {
            let (t_piece, before_piece) = (Instant::now(), self.counts());
            // No sync per piece: on a GPU the pieces' work stays queued (the split of the
            // seconds between the two reports is then the host's recording time).
            let basis = self.powers_of(p, &x, r)?;
            powers_seconds += t_piece.elapsed().as_secs_f64();
            powers_counts.add(&self.counts().since(&before_piece));
            // Value k's powers are the map's inputs k·d … k·d + d − 1.
            let columns = r.start * p.degree..r.end * p.degree;
            let weights = self.weights(plan, s + 1, w, (&(0..w.outputs()), Some(&columns)))?;
            meta.get_or_insert(basis.meta());
            let grouped = basis.polys.regroup(&ring)?;
            sum = Some(match sum {
                None => be.linear_sparse(&weights, &grouped)?,
                Some(acc) => be.linear_sparse_add(&weights, &grouped, acc)?,
            });
        }
        drop(x);
        let (sum, meta) = sum.zip(meta).expect("a powers stage has a value");
        let linear = linear_output(
            meta,
            w,
            sum.regroup(self.ev.params().ring_q(w.level)?)?,
            w.outputs(),
        )?;
        let y = finish_linear(&self.ev, w, linear)?;
        be.sync()?;
        let chunks = pieces.len();
        let mut powers = self.report(
            plan.stages[s].describe(p.inputs),
            chunks,
            powers_seconds,
            &before,
        );
        powers.counts = powers_counts;
        let mut linear = self.report(
            plan.stages[s + 1].describe(p.inputs * p.degree),
            chunks,
            t.elapsed().as_secs_f64() - powers_seconds,
            &before,
        );
        linear.counts = linear.counts.since(&powers_counts);
        reports.extend([powers, linear]);
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

/// Whether a powers stage and the map after it run as one pass: when the map's sums (one
/// three-polynomial ciphertext per output) take at most half the basis it would otherwise
/// hold, and the map reads the basis as the powers stage lays it out.
fn fuses(p: &PowersWork, w: &LinearWork) -> bool {
    w.inputs == p.inputs * p.degree && 2 * w.outputs() <= w.inputs && w.input_size() == 3
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
        let lane = Lane::new(&params, &EvaluationKeys::default(), cpu).unwrap();
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
