//! The client/server pair (`hegpu::pair`) with a model that is not a digit network: 12 inputs
//! to 3 outputs, in both packings. The sizes come from the model: the client's requests are
//! laid out by the server's plan, the answers decrypt to the plaintext model's outputs, and
//! requests of the wrong width or under another client's keys are refused.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::{EvaluationKeys, KeySetId, Parameters};
use hegpu::nn::{Dense, Layer, Model, Square, initialize};
use hegpu::pair::{ModelClient, RequestLayout, ServedModel, SplitPacking, request_checksum};
use hegpu::tensor::Scheduler;
use rand::Rng;
use std::sync::Arc;

/// 12 → 6 → x² → 3, seeded weights.
fn model() -> Model {
    let mut m = Model {
        input: vec![12],
        layers: vec![
            Layer::Dense(Dense {
                inputs: 12,
                outputs: 6,
                weight: vec![0.0; 72],
                bias: vec![0.0; 6],
            }),
            Layer::Square(Square),
            Layer::Dense(Dense {
                inputs: 6,
                outputs: 3,
                weight: vec![0.0; 18],
                bias: vec![0.0; 3],
            }),
        ],
    };
    initialize(&mut m, 5).unwrap();
    m
}

fn inputs(count: usize, seed: u64) -> Vec<f32> {
    let mut r = common::rng(seed);
    (0..count * 12).map(|_| r.random_range(0.0..1.0)).collect()
}

/// The server's scheduler under `keys` (bytes) on the CPU, and their key set.
fn server(params: &Arc<Parameters>, keys: &[u8]) -> (Scheduler, KeySetId) {
    let keys = EvaluationKeys::from_bytes(keys, params).unwrap();
    let key_set = keys.key_set().unwrap().unwrap();
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let scheduler = Scheduler::new(params, &keys, cpu, Default::default()).unwrap();
    (scheduler, key_set)
}

#[test]
fn a_non_digit_model_round_trips_in_both_packings() {
    let model = model();
    let calibration = inputs(32, 1);
    let images = inputs(3, 2);
    for packing in [
        SplitPacking::Batch,
        SplitPacking::Latency { per_ciphertext: 1 },
    ] {
        let params = common::test_params(3);
        let served = ServedModel::new(&model, &calibration, packing, Some(params.clone())).unwrap();
        let layout = served.layout();
        assert_eq!((layout.input_len(), layout.output_len()), (12, 3));
        let (client, keys) = ModelClient::new(params.clone(), layout).unwrap();
        let (scheduler, key_set) = server(&params, &keys);
        let count = served.request_images().min(3);
        let request = client
            .request(0, (0, count), &images[..count * 12])
            .unwrap();
        let answer = served
            .answer(&scheduler, key_set, &request, "request", None)
            .unwrap();
        let source = request_checksum(&request).unwrap();
        let outputs = client
            .outputs(&answer.bytes, "answer", (0, (0, count)), source)
            .unwrap();
        assert_eq!(outputs.len(), count);
        for (i, got) in outputs.iter().enumerate() {
            let want = model.forward(&images[i * 12..(i + 1) * 12]).unwrap();
            assert_eq!(got.len(), 3);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-2,
                    "{packing:?} image {i}: {got:?} against {want:?}"
                );
            }
        }

        // Requests of another width are refused by the client, before any encryption.
        let e = client
            .request(0, (0, 1), &images[..11])
            .unwrap_err()
            .to_string();
        assert!(e.contains("images of 12 values"), "{e}");

        // Ciphertexts under another client's keys are refused by the server.
        let (other, _) = ModelClient::new(params.clone(), served.layout()).unwrap();
        let theirs = other.request(0, (0, 1), &images[..12]).unwrap();
        let e = served
            .answer(&scheduler, key_set, &theirs, "theirs", None)
            .err()
            .expect("another key set")
            .to_string();
        assert!(e.contains("key set"), "{e}");
    }
}

#[test]
fn the_batch_layout_is_the_plans_shapes() {
    let params = common::test_params(3);
    let served =
        ServedModel::new(&model(), &inputs(8, 3), SplitPacking::Batch, Some(params)).unwrap();
    let RequestLayout::Batch { input, output } = served.layout() else {
        panic!("a batch layout")
    };
    assert_eq!((input, output), (vec![12], vec![3]));
    assert_eq!(served.layout().shapes(), (vec![12], vec![3]));
}
