//! The scheduler: places a [`LayerPlan`]'s tensors and work on the GPU and the CPU.
//!
//! - **Resident**: the whole plan on the GPU, when its estimated peak fits the memory budget
//!   (or no budget is known).
//! - **Streamed**: tensors stay on the host; each linear stage runs in chunks of outputs, their
//!   inputs uploaded in blocks (the next block's upload is issued while the GPU computes the
//!   current one) and the finished outputs read back. Chunk and block sizes come from the
//!   budget; an allocation the GPU still refuses makes the chunk retry smaller.
//! - **Split** (streamed, [`ScheduleOptions::split`]): the CPU takes chunks from the back of a
//!   stage's queue while the GPU takes them from the front, but only when, at the speeds
//!   measured so far, it finishes its chunk before the GPU would finish the whole queue.
//!
//! When the GPU fails (device lost, out of memory, driver error), the batch completes on the
//! CPU with the same result (both devices compute the same words) and a warning says so:
//! resident work restarts from the batch's input, kept on the host; streamed work goes on
//! from the chunk that failed. A lost device is not used again.

use super::lane::{Lane, Observer, Prepared};
use super::memory::Footprint;
use super::plan::LayerPlan;
use super::report::{Mode, ScheduleReport, StageReport};
use super::work::Work;
use crate::backend::{Backend, CpuBackend, PolyBatch};
use crate::circuits::{
    DiagonalWork, LinearWork, PowersWork, finish_linear, linear_output, polynomial, powers, ranges,
    square_relin_rescale,
};
use crate::ckks::{Ciphertext, EvaluationKeys, Parameters};
use crate::{Error, GpuError, Result};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How the scheduler may use the GPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScheduleOptions {
    /// Bytes of GPU memory to plan for (default: the GPU backend's budget; without one, the
    /// whole plan goes on the GPU until the driver refuses an allocation).
    pub gpu_memory: Option<u64>,
    /// Stream every batch and let the CPU take chunks when that finishes stages sooner.
    pub split: bool,
}

#[derive(Default)]
struct State {
    /// Why the GPU is not used any more.
    gpu_lost: Option<String>,
    /// A budget learned from an allocation the GPU refused.
    learned_budget: Option<u64>,
    /// Seconds per output by (plan, stage, on the GPU).
    speed: HashMap<(u64, usize, bool), f64>,
}

/// Places plans on a GPU and the CPU; see the module documentation.
pub struct Scheduler {
    params: Arc<Parameters>,
    cpu: Lane,
    gpu: Option<Lane>,
    options: ScheduleOptions,
    footprint: Footprint,
    state: Mutex<State>,
    /// What callers should tell their users (a GPU failure, the device chosen): taken with
    /// [`take_warnings`](Self::take_warnings); the library prints nothing.
    warnings: Mutex<Vec<String>>,
}

/// A linear stage being streamed: its work, its input on the host (`grouped`: each ciphertext
/// one polynomial of the doubled ring), and its chunks of outputs, left and done.
struct Streamed<'a> {
    plan: &'a LayerPlan,
    stage: usize,
    work: &'a LinearWork,
    meta: crate::ckks::CipherMeta,
    grouped: PolyBatch,
    queue: Mutex<VecDeque<Range<usize>>>,
    /// Finished chunks on the host, by first output.
    done: Mutex<Vec<(usize, Ciphertext)>>,
    /// Set when the GPU fails: the CPU worker stops taking chunks.
    stop: AtomicBool,
}

impl Streamed<'_> {
    /// Outputs `r` on the CPU.
    fn on_cpu(&self, cpu: &Lane, r: &Range<usize>) -> Result<Ciphertext> {
        cpu.linear_range(
            self.plan,
            self.stage,
            self.work,
            self.meta,
            &self.grouped,
            r,
        )
    }
}

/// The devices schedulers run on, with what is prepared there for plans (weights, encoded
/// diagonal maps; no keys): every scheduler made [`on`](Scheduler::on) one `Devices` shares
/// them, so a server with many clients' keys opens its devices and prepares its model once.
#[derive(Clone)]
pub struct Devices {
    cpu: (Arc<dyn Backend>, Arc<Prepared>),
    gpu: Option<(Arc<dyn Backend>, Arc<Prepared>)>,
    options: ScheduleOptions,
}

impl Devices {
    /// `device`: with a GPU backend the CPU (all threads) is opened too, for fallback and
    /// splitting; with the CPU backend everything runs there.
    pub fn new(device: Arc<dyn Backend>, options: ScheduleOptions) -> Result<Self> {
        let prepared = || Arc::new(Prepared::default());
        let (cpu, gpu) = if device.gpu_stats().is_some() {
            let host: Arc<dyn Backend> = Arc::new(CpuBackend::new(None)?);
            ((host, prepared()), Some((device, prepared())))
        } else {
            ((device, prepared()), None)
        };
        Ok(Self { cpu, gpu, options })
    }

    /// The device's name (the GPU's, or the CPU's).
    pub fn name(&self) -> String {
        self.gpu.as_ref().unwrap_or(&self.cpu).0.name()
    }
}

impl Scheduler {
    /// A scheduler for `device` (see [`Devices::new`]) with `keys` uploaded to each device.
    pub fn new(
        params: &Arc<Parameters>,
        keys: &EvaluationKeys,
        device: Arc<dyn Backend>,
        options: ScheduleOptions,
    ) -> Result<Self> {
        Self::on(params, keys, &Devices::new(device, options)?)
    }

    /// A scheduler for `keys` on `devices`, sharing what is prepared there with every other
    /// scheduler on them.
    pub fn on(params: &Arc<Parameters>, keys: &EvaluationKeys, devices: &Devices) -> Result<Self> {
        let lane = |(backend, prepared): &(Arc<dyn Backend>, Arc<Prepared>)| {
            Lane::new(params, keys, backend.clone(), prepared.clone())
        };
        let cpu = lane(&devices.cpu)?;
        let gpu = devices.gpu.as_ref().map(lane).transpose()?;
        Ok(Self {
            params: params.clone(),
            cpu,
            gpu,
            options: devices.options,
            footprint: Footprint::new(params),
            state: Mutex::new(State::default()),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// Adds a warning for the caller to show (see [`take_warnings`](Self::take_warnings)).
    pub fn warn(&self, warning: String) {
        lock(&self.warnings).push(warning);
    }

    /// The warnings since the last call, oldest first: GPU failures (each batch's is also its
    /// report's `fallback`) and notes a caller added, such as why the CPU was chosen.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    /// The devices in use ("GPU (...) + CPU", or the CPU's name).
    pub fn name(&self) -> String {
        match &self.gpu {
            Some(g) => format!(
                "{} with {} as fallback",
                g.backend().name(),
                self.cpu.backend().name()
            ),
            None => self.cpu.backend().name(),
        }
    }

    /// The GPU memory, in bytes, that running `plan` resident on an input of `count`
    /// ciphertexts at `level` is estimated to take besides the keys and ring tables: the
    /// prepared weights and the largest set of tensors alive at once. The scheduler runs a
    /// batch resident when this fits the budget, and streams it otherwise.
    pub fn resident_bytes(&self, plan: &LayerPlan, count: usize, level: usize) -> u64 {
        self.footprint.resident(plan, count, level)
    }

    /// The GPU's time per kernel, when it was opened to profile.
    pub fn kernel_profile(&self) -> Option<Vec<crate::backend::KernelProfile>> {
        self.gpu.as_ref()?.backend().kernel_profile()
    }

    /// The host backend: inputs are read there and outputs returned there.
    pub fn host(&self) -> &Arc<dyn Backend> {
        self.cpu.ev.backend()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Ciphertexts key-switched and single-limb NTTs run so far, on every device.
    pub fn work_done(&self) -> (u64, u64) {
        let lanes = std::iter::once(&self.cpu).chain(self.gpu.as_ref());
        lanes.fold((0, 0), |(k, n), lane| {
            (k + lane.ev.key_switches(), n + lane.backend().ntt_count())
        })
    }

    /// Runs `plan` on `x` (on the host or the GPU); the result is on the host. The report's
    /// key switches and NTTs are those made while it ran (batches run one after another).
    pub fn run(&self, plan: &LayerPlan, x: Ciphertext) -> Result<(Ciphertext, ScheduleReport)> {
        self.run_each(plan, x, &mut |_, _| {})
    }

    /// [`run`](Self::run), handing each stage's result to `each(stage, result)` as it finishes
    /// (on the device that made it), once per stage even when the GPU fails and the CPU
    /// starts over: the per-layer precision tests decrypt them.
    pub fn run_each(
        &self,
        plan: &LayerPlan,
        x: Ciphertext,
        each: &mut dyn FnMut(usize, &Ciphertext),
    ) -> Result<(Ciphertext, ScheduleReport)> {
        let before = self.work_done();
        let mut next = 0;
        let mut once = |s: usize, y: &Ciphertext| {
            if s >= next {
                next = s + 1;
                each(s, y);
            }
        };
        let (y, mut report) = self.place(plan, x, &mut once)?;
        let after = self.work_done();
        (report.key_switches, report.ntts) = (after.0 - before.0, after.1 - before.1);
        Ok((y, report))
    }

    fn place(
        &self,
        plan: &LayerPlan,
        x: Ciphertext,
        each: Observer<'_>,
    ) -> Result<(Ciphertext, ScheduleReport)> {
        x.check(&self.params)?;
        let x = self.to_host(x)?;
        let usable = self
            .gpu
            .as_ref()
            .filter(|_| self.state().gpu_lost.is_none());
        let Some(gpu) = usable else {
            return self.run_on_cpu(plan, x, None, each);
        };
        let resident = self.footprint.resident(plan, x.count, x.level);
        if !self.options.split && self.free_bytes(gpu).is_none_or(|free| resident <= free) {
            let (mut gpu_stages, before) = (Vec::new(), gpu.counts());
            match self.run_resident(gpu, plan, &x, &mut gpu_stages, each) {
                Ok(done) => Ok(done),
                Err(e) if e.is_gpu_failure() => {
                    let why = self.gpu_failed(gpu, &e);
                    let (y, mut report) = self.run_on_cpu(plan, x, Some(why), each)?;
                    // The GPU's work before it failed still counts: its finished stages, and
                    // what it did of the stage it failed in.
                    let mut unaccounted = gpu.counts().since(&before);
                    for (sum, done) in report.stages.iter_mut().zip(&gpu_stages) {
                        sum.gpu_chunks += done.gpu_chunks;
                        sum.counts.add(&done.counts);
                        unaccounted = unaccounted.since(&done.counts);
                    }
                    if let Some(failed) = report.stages.get_mut(gpu_stages.len()) {
                        failed.counts.add(&unaccounted);
                    }
                    Ok((y, report))
                }
                Err(e) => Err(e),
            }
        } else {
            self.run_streamed(gpu, plan, x, each)
        }
    }

    fn budget(&self, gpu: &Lane) -> Option<u64> {
        self.options
            .gpu_memory
            .or(gpu.backend().gpu_stats().and_then(|s| s.budget_bytes))
            .or(self.state().learned_budget)
    }

    /// What the budget leaves beside what the GPU holds now (keys, tables, weights).
    fn free_bytes(&self, gpu: &Lane) -> Option<u64> {
        let live = gpu.backend().gpu_stats().map_or(0, |s| s.live_bytes);
        self.budget(gpu).map(|b| b.saturating_sub(live))
    }

    /// Notes a GPU failure: a lost device is not used again; after a refused allocation later
    /// batches stream within three quarters of the most the GPU held. Returns the warning.
    fn gpu_failed(&self, gpu: &Lane, e: &Error) -> String {
        let mut state = self.state();
        match e {
            Error::Gpu(GpuError::OutOfMemory { .. }) => {
                let peak = gpu.backend().gpu_stats().map_or(0, |s| s.peak_bytes);
                state.learned_budget = Some(peak / 4 * 3);
            }
            _ => {
                state.gpu_lost.get_or_insert(e.to_string());
            }
        }
        let why = format!("the GPU failed ({e}); the batch completes on the CPU");
        self.warn(format!("warning: {why}"));
        why
    }

    fn run_on_cpu(
        &self,
        plan: &LayerPlan,
        x: Ciphertext,
        fallback: Option<String>,
        each: Observer<'_>,
    ) -> Result<(Ciphertext, ScheduleReport)> {
        let mut stages = Vec::new();
        let y = self.cpu.run_resident(plan, x, &mut stages, each)?;
        Ok((
            y,
            ScheduleReport {
                mode: Mode::Cpu,
                stages,
                fallback,
                key_switches: 0,
                ntts: 0,
            },
        ))
    }

    /// Runs `plan` with every tensor on the GPU; `stages` receives each finished stage's
    /// report (also when a later one fails).
    fn run_resident(
        &self,
        gpu: &Lane,
        plan: &LayerPlan,
        x: &Ciphertext,
        stages: &mut Vec<StageReport>,
        each: Observer<'_>,
    ) -> Result<(Ciphertext, ScheduleReport)> {
        let y = gpu.run_resident(plan, Self::upload(gpu, x)?, stages, each)?;
        let y = self.download(gpu, &y)?;
        Ok((
            y,
            ScheduleReport {
                mode: Mode::Resident,
                stages: std::mem::take(stages),
                fallback: None,
                key_switches: 0,
                ntts: 0,
            },
        ))
    }

    /// `x` on the host (a copy read back when it is on the GPU).
    fn to_host(&self, x: Ciphertext) -> Result<Ciphertext> {
        if x.polys.host_words().is_some() {
            return Ok(x);
        }
        let gpu = self.gpu.as_ref().ok_or_else(|| Error::WrongDevice {
            expected: self.name(),
            found: x.location(),
        })?;
        self.download(gpu, &x)
    }

    /// A copy of host ciphertexts `x` on the GPU.
    fn upload(gpu: &Lane, x: &Ciphertext) -> Result<Ciphertext> {
        let words = x.polys.host_words().expect("the input is on the host");
        let polys = gpu
            .backend()
            .upload(x.polys.ring(), x.polys.batch(), words)?;
        x.with_polys(polys, x.count)
    }

    fn download(&self, gpu: &Lane, y: &Ciphertext) -> Result<Ciphertext> {
        let words = gpu.backend().download(&y.polys)?;
        let polys = self
            .host()
            .upload(y.polys.ring(), y.polys.batch(), &words)?;
        y.with_polys(polys, y.count)
    }

    fn run_streamed(
        &self,
        gpu: &Lane,
        plan: &LayerPlan,
        mut x: Ciphertext,
        each: Observer<'_>,
    ) -> Result<(Ciphertext, ScheduleReport)> {
        let mut report = ScheduleReport {
            mode: Mode::Streamed,
            stages: Vec::new(),
            fallback: None,
            key_switches: 0,
            ntts: 0,
        };
        for (s, work) in plan.stages.iter().enumerate() {
            let (t, before) = (Instant::now(), gpu.counts());
            let mut stage = StageReport {
                what: work.describe(x.count),
                ..Default::default()
            };
            x = match work {
                Work::Linear(w) => {
                    self.stream_linear(gpu, plan, s, w, x, &mut stage, &mut report)?
                }
                Work::Square => self.stream_square(gpu, x, &mut stage, &mut report)?,
                Work::Powers(p) => {
                    p.check_input(&x)?;
                    self.stream_values(gpu, (x, p.degree), &mut stage, &mut report, |lane, c| {
                        let part = PowersWork {
                            inputs: c.count,
                            ..p.clone()
                        };
                        powers(&lane.ev, &part, c)
                    })?
                }
                Work::Polynomial(p) => {
                    p.check_input(&x)?;
                    let held = p.basis_len();
                    self.stream_values(gpu, (x, held), &mut stage, &mut report, |lane, c| {
                        polynomial(&lane.ev, &p.for_inputs(c.count), c)
                    })?
                }
                Work::Diagonal(d) => self.stream_diagonal(gpu, d, x, &mut stage, &mut report)?,
            };
            each(s, &x);
            stage.seconds = t.elapsed().as_secs_f64();
            stage.counts = gpu.counts().since(&before);
            report.stages.push(stage);
        }
        Ok((x, report))
    }

    /// Whether the GPU may still be used in this batch.
    fn gpu_usable(&self, report: &ScheduleReport) -> bool {
        report.fallback.is_none() && self.state().gpu_lost.is_none()
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_linear(
        &self,
        gpu: &Lane,
        plan: &LayerPlan,
        s: usize,
        work: &LinearWork,
        x: Ciphertext,
        stage: &mut StageReport,
        report: &mut ScheduleReport,
    ) -> Result<Ciphertext> {
        work.check_input(&x)?;
        let meta = x.meta();
        let (outputs, block) = self.footprint.stream_sizes(self.free_bytes(gpu), work);
        let st = Streamed {
            plan,
            stage: s,
            work,
            meta,
            grouped: x.polys.regroup(&work.input_ring(&self.params)?)?,
            queue: Mutex::new(ranges(work.outputs(), outputs).into()),
            done: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        };
        let gpu_ok = self.gpu_usable(report);
        let (mut gpu_time, mut cpu_time) = (Tally::default(), Tally::default());
        let mut failure = None;
        std::thread::scope(|scope| {
            let cpu_worker =
                (self.options.split && gpu_ok).then(|| scope.spawn(|| self.cpu_worker(&st)));
            if gpu_ok {
                (gpu_time, failure) = self.gpu_worker(gpu, &st, block);
            }
            if let Some(h) = cpu_worker {
                cpu_time = h.join().unwrap_or_default();
            }
        });
        match failure {
            Some(e) if e.is_gpu_failure() => report.fallback = Some(self.gpu_failed(gpu, &e)),
            Some(e) => return Err(e),
            None => {}
        }
        // What is left (all of it without a usable GPU) runs on the CPU.
        let left: Vec<Range<usize>> = lock(&st.queue).drain(..).collect();
        for r in &left {
            let t = Instant::now();
            let y = st.on_cpu(&self.cpu, r)?;
            lock(&st.done).push((r.start, y));
            cpu_time.note(t, r);
        }
        stage.gpu_chunks = gpu_time.chunks;
        stage.cpu_chunks = cpu_time.chunks;
        self.learn(plan.id, s, &gpu_time, &cpu_time);
        let mut done = std::mem::take(&mut *lock(&st.done));
        done.sort_by_key(|(start, _)| *start);
        self.cpu.join(done.into_iter().map(|(_, c)| c).collect())
    }

    /// Remembers seconds per output on each device (averaged with earlier batches).
    fn learn(&self, plan: u64, s: usize, gpu: &Tally, cpu: &Tally) {
        let mut state = self.state();
        for (on_gpu, t) in [(true, gpu), (false, cpu)] {
            if t.outputs > 0 {
                let rate = t.seconds / t.outputs as f64;
                state
                    .speed
                    .entry((plan, s, on_gpu))
                    .and_modify(|r| *r = 0.5 * (*r + rate))
                    .or_insert(rate);
            }
        }
    }

    /// Takes chunks from the front of the queue until it is empty or the GPU fails (the
    /// failed chunk goes back to the queue and the error is returned).
    fn gpu_worker(&self, gpu: &Lane, st: &Streamed, mut block: usize) -> (Tally, Option<Error>) {
        let mut tally = Tally::default();
        loop {
            // A statement of its own: the queue's lock must not be held while the chunk runs.
            let next = lock(&st.queue).pop_front();
            let Some(r) = next else { break };
            let t = Instant::now();
            match self.gpu_range(gpu, st, &r, &mut block) {
                Ok(y) => {
                    lock(&st.done).push((r.start, y));
                    tally.note(t, &r);
                }
                Err(e) => {
                    lock(&st.queue).push_front(r);
                    st.stop.store(true, Ordering::Relaxed);
                    return (tally, Some(e));
                }
            }
        }
        (tally, None)
    }

    /// Takes chunks from the back of the queue while that finishes the stage sooner.
    fn cpu_worker(&self, st: &Streamed) -> Tally {
        let (cpu_rate, gpu_rate) = {
            let state = self.state();
            let speed = |on_gpu| state.speed.get(&(st.plan.id, st.stage, on_gpu)).copied();
            (speed(false), speed(true))
        };
        let mut tally = Tally::default();
        while !st.stop.load(Ordering::Relaxed) {
            let taken = {
                let mut q = lock(&st.queue);
                let remaining: usize = q.iter().map(|r| r.len()).sum();
                let take = match (q.back(), cpu_rate, gpu_rate) {
                    (None, ..) => false,
                    // It helps when the CPU's chunk ends before the GPU would end them all.
                    (Some(r), Some(c), Some(g)) => r.len() as f64 * c < remaining as f64 * g,
                    // Unmeasured: one chunk to learn the CPU's speed, if the GPU has others.
                    (Some(_), ..) => tally.outputs == 0 && q.len() >= 2,
                };
                if take { q.pop_back() } else { None }
            };
            let Some(r) = taken else { break };
            let t = Instant::now();
            match st.on_cpu(&self.cpu, &r) {
                Ok(y) => {
                    lock(&st.done).push((r.start, y));
                    tally.note(t, &r);
                }
                Err(_) => {
                    // Left for the serial pass after the workers, which reports the error.
                    lock(&st.queue).push_back(r);
                    break;
                }
            }
        }
        tally
    }

    /// Outputs `r` of `work` on the GPU, read back to the host. A refused allocation makes it
    /// retry with half the input block, then in two halves of outputs.
    fn gpu_range(
        &self,
        gpu: &Lane,
        st: &Streamed,
        r: &Range<usize>,
        block: &mut usize,
    ) -> Result<Ciphertext> {
        loop {
            match self.gpu_range_once(gpu, st, r, *block) {
                Err(Error::Gpu(GpuError::OutOfMemory { .. })) if *block > 1 => *block /= 2,
                Err(Error::Gpu(GpuError::OutOfMemory { .. })) if r.len() > 1 => {
                    let mid = r.start + r.len() / 2;
                    let low = self.gpu_range(gpu, st, &(r.start..mid), block)?;
                    let high = self.gpu_range(gpu, st, &(mid..r.end), block)?;
                    return self.cpu.join(vec![low, high]);
                }
                other => return other,
            }
        }
    }

    fn gpu_range_once(
        &self,
        gpu: &Lane,
        st: &Streamed,
        r: &Range<usize>,
        block: usize,
    ) -> Result<Ciphertext> {
        let (be, work, grouped) = (gpu.backend(), st.work, &st.grouped);
        let ring = grouped.ring();
        let pw = ring.poly_words();
        let host = grouped
            .host_words()
            .expect("streamed inputs are on the host");
        let mut columns = work.columns(r);
        if columns.is_empty() {
            columns.push(0); // rows of constants only: one input block, no terms
        }
        let upload = |cols: &[usize]| {
            let mut words = Vec::with_capacity(cols.len() * pw);
            for &k in cols {
                words.extend_from_slice(&host[k * pw..(k + 1) * pw]);
            }
            be.upload(ring, cols.len(), &words)
        };
        let blocks: Vec<&[usize]> = columns.chunks(block.max(1)).collect();
        let mut next = Some(upload(blocks[0])?);
        let mut acc: Option<PolyBatch> = None;
        for (i, cols) in blocks.iter().enumerate() {
            let input = next.take().expect("uploaded ahead");
            let weights =
                be.upload_sparse(ring, cols.len(), &work.restrict(r, Some(cols), i == 0))?;
            let part = be.linear_sparse(&weights, &input)?;
            drop(input);
            // The next block's host copy and upload overlap the GPU's work on this one.
            if let Some(cols) = blocks.get(i + 1) {
                next = Some(upload(cols)?);
            }
            acc = Some(match acc {
                None => part,
                Some(a) => be.add(&a, &part)?,
            });
        }
        let polys = acc
            .expect("one block at least")
            .regroup(self.params.ring_q(work.level)?)?;
        let y = finish_linear(&gpu.ev, work, linear_output(st.meta, work, polys, r.len())?)?;
        self.download(gpu, &y)
    }

    /// A square stage streamed in chunks of ciphertexts; after a GPU failure the rest runs on
    /// the CPU.
    fn stream_square(
        &self,
        gpu: &Lane,
        x: Ciphertext,
        stage: &mut StageReport,
        report: &mut ScheduleReport,
    ) -> Result<Ciphertext> {
        let size = self
            .footprint
            .square_chunk(self.free_bytes(gpu), x.level + 1);
        let slice = |r: &Range<usize>| self.cpu.slice(&x, r);
        self.stream_each(gpu, (x.count, size), slice, stage, report, |lane, piece| {
            square_relin_rescale(&lane.ev, piece)
        })
    }

    /// A stage that makes `held` ciphertexts per value (a power basis, a Chebyshev basis),
    /// streamed like a square stage in chunks `held` times smaller, `f` on each piece.
    fn stream_values(
        &self,
        gpu: &Lane,
        (x, held): (Ciphertext, usize),
        stage: &mut StageReport,
        report: &mut ScheduleReport,
        f: impl Fn(&Lane, &Ciphertext) -> Result<Ciphertext>,
    ) -> Result<Ciphertext> {
        let size = self
            .footprint
            .square_chunk(self.free_bytes(gpu), x.level + 1);
        let size = (size / (2 * held)).max(1);
        let slice = |r: &Range<usize>| self.cpu.slice(&x, r);
        self.stream_each(gpu, (x.count, size), slice, stage, report, f)
    }

    /// A diagonal map streamed in chunks of groups (each chunk's inputs gathered from the
    /// input-major tensor), like a square stage.
    fn stream_diagonal(
        &self,
        gpu: &Lane,
        work: &DiagonalWork,
        x: Ciphertext,
        stage: &mut StageReport,
        report: &mut ScheduleReport,
    ) -> Result<Ciphertext> {
        let parts = work.inputs();
        if !x.count.is_multiple_of(parts) {
            return Err(Error::Shape(format!(
                "a diagonal map of {parts} inputs per group was given {} ciphertexts",
                x.count
            )));
        }
        let groups = x.count / parts;
        let size = self
            .footprint
            .diagonal_chunk(self.free_bytes(gpu), work, groups);
        let slice = |r: &Range<usize>| {
            let picked: Vec<usize> = (0..parts)
                .flat_map(|c| r.clone().map(move |g| c * groups + g))
                .collect();
            self.cpu.ev.select(&x, &picked)
        };
        self.stream_each(gpu, (groups, size), slice, stage, report, |lane, piece| {
            lane.diagonal(work, piece)
        })
    }

    /// `f` on the pieces `slice` makes of chunks of `size` of `units` (ciphertexts, or groups
    /// of them), each on the GPU while it works, the rest on the CPU after a GPU failure; the
    /// outputs joined in order on the host.
    fn stream_each(
        &self,
        gpu: &Lane,
        (units, size): (usize, usize),
        slice: impl Fn(&Range<usize>) -> Result<Ciphertext>,
        stage: &mut StageReport,
        report: &mut ScheduleReport,
        f: impl Fn(&Lane, &Ciphertext) -> Result<Ciphertext>,
    ) -> Result<Ciphertext> {
        let mut parts = Vec::new();
        for r in ranges(units, size) {
            let piece = slice(&r)?;
            if self.gpu_usable(report) {
                let attempt = Self::upload(gpu, &piece)
                    .and_then(|on_gpu| f(gpu, &on_gpu))
                    .and_then(|y| self.download(gpu, &y));
                match attempt {
                    Ok(y) => {
                        stage.gpu_chunks += 1;
                        parts.push(y);
                        continue;
                    }
                    Err(e) if e.is_gpu_failure() => {
                        report.fallback = Some(self.gpu_failed(gpu, &e))
                    }
                    Err(e) => return Err(e),
                }
            }
            stage.cpu_chunks += 1;
            parts.push(f(&self.cpu, &piece)?);
        }
        self.cpu.join(parts)
    }
}

/// Time, outputs and chunks one device did in a stage.
#[derive(Default)]
struct Tally {
    seconds: f64,
    outputs: usize,
    chunks: usize,
}

impl Tally {
    fn note(&mut self, started: Instant, r: &Range<usize>) {
        self.seconds += started.elapsed().as_secs_f64();
        self.outputs += r.len();
        self.chunks += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::{KeyGenerator, Preset, Seed};

    /// Keys of a fresh secret key (relinearization only).
    fn keys(params: &Arc<Parameters>, seed: u8) -> EvaluationKeys {
        let mut keygen = KeyGenerator::new(params, Seed::Fixed([seed; 32]));
        let sk = keygen.secret_key().unwrap();
        EvaluationKeys {
            relin: Some(keygen.relin_key(&sk).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn schedulers_on_the_same_devices_share_them_and_what_is_prepared_there() {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(1)).unwrap());
        let devices = Devices::new(cpu.clone(), ScheduleOptions::default()).unwrap();
        let a = Scheduler::on(&params, &keys(&params, 1), &devices).unwrap();
        let b = Scheduler::on(&params, &keys(&params, 2), &devices).unwrap();
        assert!(Arc::ptr_eq(a.cpu.prepared(), b.cpu.prepared()));
        assert!(Arc::ptr_eq(a.host(), b.host()));
        assert_eq!(a.cpu.prepared().held(), (0, 0));
        // A scheduler of its own prepares on its own.
        let alone = Scheduler::new(&params, &keys(&params, 3), cpu, Default::default()).unwrap();
        assert!(!Arc::ptr_eq(a.cpu.prepared(), alone.cpu.prepared()));
        assert!(Arc::ptr_eq(a.host(), alone.host()));
    }
}
