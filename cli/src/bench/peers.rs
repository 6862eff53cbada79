//! The tfhe-rs peer (feature `peers`): the network's first dense layer on 8-bit inputs
//! encrypted with TFHE radix integers (tfhe-rs default parameters), as a cost per image.
//!
//! TFHE encrypts one value per ciphertext, so a dense layer costs `inputs` widenings and
//! `inputs × outputs` multiply-adds per image, whatever the batch. The bench times those
//! operations on a sample of the layer's terms (a dot product of `terms` real quantized
//! activations and weights, decrypted and checked against the clear sum) and multiplies out;
//! all of a layer at 2 cores would take hours.

use super::Record;
use super::network::DenseSample;
use hegpu::{Error, Result};
use std::time::Instant;
use tfhe::prelude::*;
use tfhe::{ConfigBuilder, FheInt32, FheUint8, generate_keys, set_server_key};

/// Times the sample's dot product under TFHE and returns the per-image record.
pub fn tfhe_dense_layer(sample: &DenseSample, terms: usize) -> Result<Record> {
    let terms = terms.clamp(2, sample.inputs.len());
    let (client, server) = generate_keys(ConfigBuilder::default());
    set_server_key(server);
    let x = &sample.inputs[..terms];
    let w = &sample.weights[..terms];
    let encrypted: Vec<FheUint8> = x.iter().map(|&v| FheUint8::encrypt(v, &client)).collect();

    // Widen to 32 bits: |Σ x·w| < 255 · 127 · inputs fits for any layer below 66,000 inputs.
    let t = Instant::now();
    let wide: Vec<FheInt32> = encrypted.into_iter().map(CastInto::cast_into).collect();
    let widen = t.elapsed().as_secs_f64() / terms as f64;

    let t = Instant::now();
    let products: Vec<FheInt32> = wide
        .iter()
        .zip(w)
        .map(|(c, &wt)| c * i32::from(wt))
        .collect();
    let multiply = t.elapsed().as_secs_f64() / terms as f64;

    // The library's many-operand sum (carry-save), its fastest way to add.
    let t = Instant::now();
    let sum: FheInt32 = products.iter().sum();
    let add = t.elapsed().as_secs_f64() / (terms - 1) as f64;

    let got: i32 = sum.decrypt(&client);
    let want: i32 = x
        .iter()
        .zip(w)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum();
    if got != want {
        return Err(Error::Config(format!(
            "tfhe-rs dot product decrypted to {got}, the clear one is {want}"
        )));
    }
    let (inputs, outputs) = (sample.inputs.len(), sample.outputs);
    let seconds_per_image = inputs as f64 * widen + (inputs * outputs) as f64 * (multiply + add);
    Ok(Record {
        op: "dense_layer",
        n: 0,
        limbs: 0,
        batch: 1,
        backend: "tfhe-rs 1.8 FheInt32 (peer)".into(),
        threads: rayon::current_num_threads(),
        per_second: 1.0 / seconds_per_image,
        unit: "images",
        detail: format!(
            "{inputs}->{outputs} on u8 inputs and i8 weights; per term: widen {:.1} ms, multiply {:.1} ms, add {:.1} ms, from a checked {terms}-term dot product",
            widen * 1e3,
            multiply * 1e3,
            add * 1e3
        ),
    })
}
