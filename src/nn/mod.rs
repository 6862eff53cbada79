//! Neural networks with polynomial activations: layers and the plaintext forward pass, a CPU
//! trainer, and model files.

pub mod approx;
pub mod arch;
pub mod bounds;
mod chain;
pub mod encrypted;
pub mod file;
pub mod latency;
pub mod mnist;
pub mod model;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod stages;
pub mod train;

pub use approx::{ApproxSpec, Replaced, approximate};
pub use arch::parse_architecture;
pub use bounds::{Bounds, InputRange};
pub use encrypted::{EncryptedNetwork, encrypt_images, encrypt_images_to_bytes};
pub use file::{WeightType, load_model, model_from_bytes, model_to_bytes, save_model};
pub use latency::{LatencyCost, LatencyNetwork, MOST_REQUEST_IMAGES, StepSlots};
pub use mnist::{MnistRecipe, pixels, train_mnist};
pub use model::{Activation, Layer, Model, Shape, argmax, cryptonets};
#[cfg(feature = "onnx")]
pub use onnx::{Imported, import_onnx, import_onnx_file};
pub use stages::levels_needed;
pub use train::{
    Dataset, EpochReport, TrainConfig, accuracy, initialize, loss_and_gradient, parameters,
    set_parameters, train,
};
