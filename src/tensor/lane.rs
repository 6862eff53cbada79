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

/// Weights prepared on a device, by plan, stage and range of outputs. A stage keeps one set of
/// ranges: preparing a range drops the cached ones it overlaps (a streamed stage's chunks change
/// with the memory budget, and stale ones would hold device memory).
type WeightCache = HashMap<(u64, usize, usize, usize), Arc<SparseWeights>>;

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

    /// Rows `range` of stage `stage` over all its inputs, prepared on this device once.
    fn weights(
        &self,
        plan: &LayerPlan,
        stage: usize,
        work: &LinearWork,
        range: &Range<usize>,
    ) -> Result<Arc<SparseWeights>> {
        let key = (plan.id, stage, range.start, range.end);
        if let Some(w) = self.cache().get(&key) {
            return Ok(w.clone());
        }
        let ring = work.input_ring(self.ev.params())?;
        let rows = work.restrict(range, None, true);
        let w = Arc::new(self.backend().upload_sparse(&ring, work.inputs, &rows)?);
        let mut cache = self.cache();
        cache.retain(|&(id, st, start, end), _| {
            id != plan.id || st != stage || end <= range.start || range.end <= start
        });
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
        let weights = self.weights(plan, stage, work, range)?;
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
        for (s, work) in plan.stages.iter().enumerate() {
            let (t, before) = (Instant::now(), self.counts());
            let what = work.describe(x.count);
            let (y, chunks) = match work {
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
                    // Pieces whose powers (three polynomials each) stay within the host
                    // pool's largest buffer, so each piece reuses the last one's memory.
                    let piece = (CHUNK / (2 * p.degree)).max(1);
                    let parts = ranges(x.count, piece)
                        .iter()
                        .map(|r| {
                            let part = PowersWork {
                                inputs: r.len(),
                                ..p.clone()
                            };
                            powers(&self.ev, &part, &self.slice(&x, r)?)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let chunks = parts.len();
                    (self.join(parts)?, chunks)
                }
                Work::Diagonal(d) => (self.diagonal(d, &x)?, 1),
            };
            x = y;
            each(s, &x);
            self.backend().sync()?;
            let on_gpu = self.backend().gpu_stats().is_some();
            reports.push(StageReport {
                what,
                gpu_chunks: if on_gpu { chunks } else { 0 },
                cpu_chunks: if on_gpu { 0 } else { chunks },
                seconds: t.elapsed().as_secs_f64(),
                counts: self.counts().since(&before),
            });
        }
        Ok(x)
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
            let mut keys: Vec<_> = lane.cache().keys().copied().collect();
            keys.sort_unstable();
            keys
        };
        for r in [0..2, 2..4] {
            lane.weights(&plan, 0, &work, &r).unwrap();
        }
        lane.weights(&other, 0, &work, &(0..4)).unwrap();
        assert_eq!(cached(&lane).len(), 3);
        // Chunks of another size replace the ones they overlap, in their own plan only.
        lane.weights(&plan, 0, &work, &(1..3)).unwrap();
        let (a, b) = (plan.id, other.id);
        assert_eq!(cached(&lane), vec![(a, 0, 1, 3), (b, 0, 0, 4)]);
        let again = lane.weights(&plan, 0, &work, &(1..3)).unwrap();
        assert!(Arc::ptr_eq(
            &again,
            &lane.weights(&plan, 0, &work, &(1..3)).unwrap()
        ));
    }
}
