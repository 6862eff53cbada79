//! Neural networks with polynomial activations: layers and the plaintext forward pass, a CPU
//! trainer, and model files.

pub(crate) mod approx;
pub(crate) mod arch;
pub(crate) mod bounds;
mod chain;
pub(crate) mod encrypted;
pub(crate) mod file;
pub(crate) mod latency;
pub(crate) mod layer;
pub(crate) mod mnist;
pub(crate) mod model;
#[cfg(feature = "onnx")]
pub(crate) mod onnx;
pub(crate) mod stages;
pub(crate) mod train;

pub use approx::{ApproxSpec, Replaced, approximate, fit_polynomial};
pub use arch::parse_architecture;
pub use bounds::{Bounds, InputRange};
pub use encrypted::{EncryptedNetwork, encrypt_images, encrypt_images_to_bytes};
pub use file::{WeightType, load_model, model_from_bytes, model_to_bytes, save_model};
pub use latency::{LatencyCost, LatencyNetwork, MOST_REQUEST_IMAGES, StepSlots};
pub use layer::{
    Activation, AvgPool, Conv2d, Dense, Flatten, Layer, Pad2d, Poly, Polynomial, Relu, Shape,
    Sigmoid, Silu, Square, SumPool, Tanh, limits,
};
pub use mnist::{MnistRecipe, pixels, train_mnist};
pub use model::{Model, argmax, cryptonets};
#[cfg(feature = "onnx")]
pub use onnx::{Imported, import_onnx, import_onnx_file};
pub use stages::{levels_needed, stage_work};
pub use train::{
    Dataset, EpochReport, TrainConfig, accuracy, initialize, loss_and_gradient, parameters,
    set_parameters, train,
};
