//! How the GPU backend waits for its device: for an adapter and a device when it opens, for its
//! error scopes after each operation, for the queue to drain (`sync`), and for readbacks to map.
//! Every wait goes through one [`Wait`]; the default, [`Blocking`], polls the device and blocks
//! the calling thread, as a native program may. A caller that must not block (a browser's main
//! thread) supplies its own through [`GpuHooks::wait`](super::GpuHooks::wait).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// Work the backend needs finished before it goes on.
pub type Pending<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs the backend's futures to completion.
pub trait Wait: Send + Sync {
    /// Drives `future` to completion. On native backends `device` (once one is open) must be
    /// polled meanwhile, or the callbacks that complete a readback never fire.
    fn finish(&self, device: Option<&wgpu::Device>, future: Pending<'_>);
}

/// Native waiting: polls the device until its queue is idle, then blocks the thread on the
/// future (by then the device's callbacks have fired).
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

impl Wait for Blocking {
    fn finish(&self, device: Option<&wgpu::Device>, future: Pending<'_>) {
        if let Some(device) = device {
            // A failed poll (a lost device) leaves the future to report it: a mapping then
            // completes with an error.
            let _ = device.poll(wgpu::PollType::wait_indefinitely());
        }
        pollster::block_on(future);
    }
}

/// `future`'s output, finished by `wait`.
pub(crate) fn finish<T>(
    wait: &dyn Wait,
    device: Option<&wgpu::Device>,
    future: impl Future<Output = T>,
) -> T {
    let mut out = None;
    wait.finish(
        device,
        Box::pin(async {
            out = Some(future.await);
        }),
    );
    out.expect("Wait::finish runs its future to completion")
}

/// A value a device callback delivers, as a future.
pub(crate) struct Delivery<T> {
    slot: Arc<Mutex<(Option<T>, Option<Waker>)>>,
}

impl<T: Send + 'static> Delivery<T> {
    /// The future, and the callback that completes it.
    pub fn new() -> (Self, impl FnOnce(T) + Send + 'static) {
        let slot = Arc::new(Mutex::new((None, None::<Waker>)));
        let sender = slot.clone();
        let deliver = move |value| {
            let mut s = sender.lock().unwrap_or_else(|p| p.into_inner());
            s.0 = Some(value);
            if let Some(waker) = s.1.take() {
                waker.wake();
            }
        };
        (Self { slot }, deliver)
    }
}

impl<T> Future for Delivery<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        let mut s = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match s.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// `slice` mapped for reading, as a future.
pub(crate) fn mapped(slice: wgpu::BufferSlice<'_>) -> Delivery<Result<(), wgpu::BufferAsyncError>> {
    let (done, deliver) = Delivery::new();
    slice.map_async(wgpu::MapMode::Read, deliver);
    done
}
