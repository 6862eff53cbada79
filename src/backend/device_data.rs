//! The opaque handle through which a device backend keeps its data (a batch's words, prepared
//! weights) inside the device-neutral types: only that backend knows the type behind it.

use crate::Result;
use std::any::Any;

/// Data a device backend holds (a batch's words, prepared weights), opaque to everything but
/// that backend, which downcasts it to its own type: the device-neutral types know no device.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(crate) struct DeviceData(Box<dyn DeviceWords>);

/// What a device backend's data tells the device-neutral types.
pub(crate) trait DeviceWords: Any + Send + Sync {
    /// Where the data lives, for messages.
    fn location(&self) -> String;

    /// Views the polynomials as `factor` times fewer and longer ones (`grouping`) or the
    /// reverse: only the backend knows whether its layout allows it.
    fn regroup(&mut self, grouping: bool, factor: usize) -> Result<()>;
}

#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
impl DeviceData {
    pub(crate) fn new(data: impl DeviceWords) -> Self {
        Self(Box::new(data))
    }

    /// The data as the backend's type `T`, if it is one.
    pub(crate) fn get<T: DeviceWords>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref()
    }

    pub(crate) fn location(&self) -> String {
        self.0.location()
    }

    pub(crate) fn regroup(&mut self, grouping: bool, factor: usize) -> Result<()> {
        self.0.regroup(grouping, factor)
    }
}
