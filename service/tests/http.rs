//! The service on loopback: the HTTP client gets the in-process pair's digits in both packings;
//! concurrent clients with their own keys; and each hostile or unlucky case (unknown or evicted
//! key ids, a foreign key set, malformed and oversize bodies, a slow client, a client that
//! hangs up mid-upload, a full queue, a restart) ends in a clear error or a retry, never a
//! crash, a hang or a wrong answer.

use hegpu::backend::{Backend, CpuBackend};
use hegpu::data::Mnist;
use hegpu::nn::{argmax, pixels};
use hegpu::pair::DIGIT_PIXELS;
use hegpu::pair::SplitPacking;
use hegpu::pair::{ModelClient, RequestLayout, ServedModel, latency_plan, request_checksum};
use hegpu::tensor::{Devices, ScheduleOptions, Scheduler};
use hegpu_service::{Client, Service, ServiceOptions, classify};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> PathBuf {
    root().join("models/cryptonets-5.safetensors")
}

fn mnist() -> &'static Mnist {
    static M: OnceLock<Mnist> = OnceLock::new();
    M.get_or_init(|| Mnist::load(&root().join("data/mnist")).unwrap())
}

fn served(packing: SplitPacking) -> ServedModel {
    ServedModel::plan(&model(), mnist(), packing, None).unwrap()
}

/// A running server; stopped (gracefully) when dropped.
struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("the server's thread ends");
        }
    }
}

fn start(packing: SplitPacking, options: ServiceOptions) -> Running {
    start_with(packing, options, None)
}

fn start_with(
    packing: SplitPacking,
    options: ServiceOptions,
    tls: Option<hegpu_service::Tls>,
) -> Running {
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let devices = Devices::new(backend, ScheduleOptions::default()).unwrap();
    let service = Service::new(served(packing), devices, options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("{scheme}://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (up, is_up) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let stop = async move {
                let _ = stopped.await;
            };
            let ready = |_| up.send(()).unwrap();
            hegpu_service::serve(&service, &addr.to_string(), tls.as_ref(), ready, stop)
                .await
                .unwrap();
        });
    });
    is_up.recv().unwrap();
    Running {
        url,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn client(url: &str) -> Client {
    Client::new(url, Duration::from_secs(120))
}

/// The digits of the first `count` test images through the pair in process (no HTTP).
fn in_process(packing: SplitPacking, count: usize, per_request: usize) -> Vec<usize> {
    let served = served(packing);
    let layout = match packing {
        SplitPacking::Batch => RequestLayout::digits(),
        SplitPacking::Latency { per_ciphertext } => RequestLayout::Latency(
            latency_plan(
                Some(&model()),
                mnist(),
                per_ciphertext,
                Some(served.params()),
            )
            .unwrap(),
        ),
    };
    let (client, keys) = ModelClient::new(served.params().clone(), layout).unwrap();
    let keys = hegpu::ckks::EvaluationKeys::from_bytes(&keys, served.params()).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let scheduler = Scheduler::new(served.params(), &keys, backend, Default::default()).unwrap();
    let px = pixels(&mnist().test_images);
    let mut digits = Vec::new();
    for (b, start) in (0..count).step_by(per_request).enumerate() {
        let end = (start + per_request).min(count);
        let request = client
            .request(
                b,
                (start, end),
                &px[start * DIGIT_PIXELS..end * DIGIT_PIXELS],
            )
            .unwrap();
        let answer = served
            .answer(&scheduler, client.key_set(), &request, "request", None)
            .unwrap();
        let source = request_checksum(&request).unwrap();
        let outputs = client
            .outputs(&answer.bytes, "answer", (b, (start, end)), source)
            .unwrap();
        digits.extend(outputs.iter().map(|o| argmax(o)));
    }
    digits
}

#[test]
fn the_batch_packing_over_http_gives_the_in_process_digits() {
    let server = start(SplitPacking::Batch, ServiceOptions::default());
    // One request (a batch costs the same however full it is).
    let report = classify(&client(&server.url), mnist(), 24, None, None).unwrap();
    assert_eq!(report.images, 24);
    assert_eq!(report.latencies().len(), 1);
    assert_eq!(report.digits, in_process(SplitPacking::Batch, 24, 24));
    assert!(report.correct >= 22, "{} of 24", report.correct);
}

#[test]
fn the_latency_packing_over_http_gives_the_in_process_digits() {
    let packing = SplitPacking::Latency { per_ciphertext: 2 };
    let server = start(packing, ServiceOptions::default());
    let http = client(&server.url);
    // Without the model, a latency client cannot lay its images out.
    let err = classify(&http, mnist(), 1, None, None).unwrap_err();
    assert!(err.to_string().contains("--model"), "{err}");
    let report = classify(&http, mnist(), 6, None, Some(&model())).unwrap();
    assert_eq!(report.latencies().len(), 3);
    assert_eq!(report.digits, in_process(packing, 6, 2));
    // A client that plans another model is told so before it sends anything.
    let other = root().join("models/cryptonets-16.safetensors");
    let err = classify(&http, mnist(), 1, None, Some(&other)).unwrap_err();
    assert!(
        err.to_string()
            .contains("give the client the server's --model"),
        "{err}"
    );
}

#[test]
fn concurrent_clients_with_their_own_keys_all_get_their_answers() {
    let packing = SplitPacking::Latency { per_ciphertext: 1 };
    let server = start(packing, ServiceOptions::default());
    let url = server.url.clone();
    let want = in_process(packing, 1, 1);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || classify(&client(&url), mnist(), 1, None, Some(&model())))
        })
        .collect();
    for t in threads {
        let report = t.join().unwrap().unwrap();
        assert_eq!(report.digits, want);
    }
    let metrics = http_get(&server.url, "/metrics");
    assert!(metrics.contains("hegpu_answered_total 16"), "{metrics}");
    assert!(metrics.contains("hegpu_keys_held 16"), "{metrics}");
}

/// A raw GET (for the endpoints that answer text).
fn http_get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn bad_requests_are_clear_errors_and_the_server_goes_on() {
    let options = ServiceOptions {
        max_request_bytes: 4 << 20,
        ..Default::default()
    };
    let packing = SplitPacking::Latency { per_ciphertext: 2 };
    let server = start(packing, options);
    let http = client(&server.url);
    let params = hegpu::ckks::Parameters::from_bytes(&http.params().unwrap()).unwrap();
    let plan = || latency_plan(Some(&model()), mnist(), 2, Some(&params)).unwrap();
    let (alice, alice_keys) =
        ModelClient::new(params.clone(), RequestLayout::Latency(plan())).unwrap();
    let (bob, _) = ModelClient::new(params.clone(), RequestLayout::Latency(plan())).unwrap();
    let alice_id = http.register(&alice_keys).unwrap();
    // The id names these very keys (a digest of their bytes), not the key set they claim:
    // the same bytes get the same id, other keys another.
    assert_eq!(alice_id.len(), 32);
    assert_ne!(alice_id, alice.key_set().to_string());
    assert_eq!(http.register(&alice_keys).unwrap(), alice_id);
    let px = pixels(&mnist().test_images);
    let bob_request = bob.request(0, (0, 1), &px[..DIGIT_PIXELS]).unwrap();
    let code = |e: hegpu_service::ClientError| (e.code().unwrap_or("").to_string(), e.to_string());

    // An unknown key id.
    let (c, m) = code(http.infer("00ff", &bob_request).unwrap_err());
    assert_eq!(c, "unknown_key", "{m}");
    assert!(m.contains("register the evaluation keys again"), "{m}");
    // A request under another client's keys: refused, never evaluated into garbage.
    let (c, m) = code(http.infer(&alice_id, &bob_request).unwrap_err());
    assert_eq!(c, "bad_request", "{m}");
    assert!(m.contains("key set"), "{m}");
    // Malformed bodies: not a frame, a frame with a corrupted ciphertext, keys that are not keys.
    let (c, m) = code(http.infer(&alice_id, b"hello").unwrap_err());
    assert_eq!(c, "bad_request", "{m}");
    let mut corrupted = alice.request(0, (0, 1), &px[..DIGIT_PIXELS]).unwrap();
    let at = corrupted.len() / 2;
    corrupted[at] ^= 1;
    let (c, m) = code(http.infer(&alice_id, &corrupted).unwrap_err());
    assert_eq!(c, "bad_request", "{m}");
    let (c, m) = code(http.register(b"not keys").unwrap_err());
    assert_eq!(c, "bad_request", "{m}");
    // An oversize body: refused with 413.
    let big = vec![0u8; (4 << 20) + 1];
    match http.infer(&alice_id, &big).unwrap_err() {
        hegpu_service::ClientError::Server { status, .. } => assert_eq!(status, 413),
        // The server may close the connection before reading it all.
        hegpu_service::ClientError::Transport(_) => {}
    }
    // Still serving, and right.
    let request = alice.request(0, (0, 2), &px[..2 * DIGIT_PIXELS]).unwrap();
    let answer = http.infer(&alice_id, &request).unwrap();
    let outputs = alice
        .outputs(
            &answer,
            "answer",
            (0, (0, 2)),
            request_checksum(&request).unwrap(),
        )
        .unwrap();
    let labels = &mnist().test_labels;
    let right = outputs
        .iter()
        .zip(labels.iter())
        .filter(|(o, l)| argmax(o) == usize::from(**l))
        .count();
    assert_eq!(right, 2);
    let metrics = http_get(&server.url, "/metrics");
    assert!(metrics.contains("hegpu_failed_total"), "{metrics}");
}

#[test]
fn request_bodies_are_held_within_the_body_memory() {
    let options = ServiceOptions {
        body_memory: 64 << 10,
        ..Default::default()
    };
    let server = start(SplitPacking::Latency { per_ciphertext: 1 }, options);
    let addr = server.url.trim_start_matches("http://").to_string();
    let post = |head: &str, sent: usize| {
        let mut c = TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{head}\r\n"
        )
        .unwrap();
        c.write_all(&vec![7u8; sent]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };
    let answer = |mut c: TcpStream| {
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let held = || {
        let metrics = http_get(&server.url, "/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("hegpu_body_bytes_held "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    // A body larger than all the body memory: 413 before a byte is read.
    let over = answer(post("Content-Length: 65537\r\n", 0));
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");
    assert!(over.contains("body memory"), "{over}");
    // A body without a length: 411.
    let chunked = "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n";
    let no_length = answer(post(chunked, 0));
    assert!(no_length.starts_with("HTTP/1.1 411"), "{no_length}");
    assert!(no_length.contains("length_required"), "{no_length}");
    // One body arriving holds 40 KiB; a second is told to retry (503, Retry-After), and the
    // whole of it is read and dropped so that it gets that answer, not a reset connection.
    let length = "Content-Length: 40960\r\n";
    let mut first = post(length, 1000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(held(), 40960);
    let second = answer(post(length, 40960));
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(second.contains("retry-after: 1"), "{second}");
    assert!(second.contains(r#""code":"busy""#), "{second}");
    first.write_all(&[7u8; 40960 - 1000]).unwrap();
    let first = answer(first);
    assert!(first.starts_with("HTTP/1.1 400"), "{first}");
    assert_eq!(held(), 0);
}

/// The bytes `keys` take in memory on the server.
fn memory(keys: &[u8]) -> u64 {
    let params = served(SplitPacking::Latency { per_ciphertext: 1 })
        .params()
        .clone();
    hegpu::ckks::EvaluationKeys::from_bytes(keys, &params)
        .unwrap()
        .memory_bytes()
}

#[test]
fn evicted_keys_and_restarts_are_registered_again() {
    let packing = SplitPacking::Latency { per_ciphertext: 1 };
    let probe = start(packing, ServiceOptions::default());
    let http = client(&probe.url);
    let info = http.info().unwrap();
    assert_eq!(info.preset.as_deref(), Some("cryptonets8192"));
    let params = hegpu::ckks::Parameters::from_bytes(&http.params().unwrap()).unwrap();
    assert_eq!(info.levels, params.max_level());
    let plan = || latency_plan(Some(&model()), mnist(), 1, Some(&params)).unwrap();
    let (alice, alice_keys) =
        ModelClient::new(params.clone(), RequestLayout::Latency(plan())).unwrap();
    let (bob, bob_keys) = ModelClient::new(params.clone(), RequestLayout::Latency(plan())).unwrap();
    assert_eq!(info.fingerprint, plan().fingerprint());
    drop(probe);
    // Room for one client's keys only.
    let server = start(
        packing,
        ServiceOptions {
            key_memory: memory(&alice_keys) + 1000,
            ..Default::default()
        },
    );
    let http = client(&server.url);
    let mut alice_id = http.register(&alice_keys).unwrap();
    let bob_id = http.register(&bob_keys).unwrap();
    let px = pixels(&mnist().test_images);
    let request = alice.request(0, (0, 1), &px[..DIGIT_PIXELS]).unwrap();
    let e = http.infer(&alice_id, &request).unwrap_err();
    assert_eq!(e.code(), Some("unknown_key"), "{e}");
    // The client registers again and is answered; now Bob is the one evicted.
    let answer = http
        .infer_registered(&mut alice_id, &alice_keys, &request)
        .unwrap();
    let source = request_checksum(&request).unwrap();
    alice
        .outputs(&answer, "answer", (0, (0, 1)), source)
        .unwrap();
    let bob_request = bob.request(0, (0, 1), &px[..DIGIT_PIXELS]).unwrap();
    assert_eq!(
        http.infer(&bob_id, &bob_request).unwrap_err().code(),
        Some("unknown_key")
    );
    // A restarted server knows no keys: the same client registers again.
    drop(server);
    let restarted = start(packing, ServiceOptions::default());
    let http = client(&restarted.url);
    let answer = http
        .infer_registered(&mut alice_id, &alice_keys, &request)
        .unwrap();
    alice
        .outputs(&answer, "answer", (0, (0, 1)), source)
        .unwrap();
}

#[test]
fn slow_and_vanishing_clients_and_a_full_queue_end_in_errors_or_retries() {
    let options = ServiceOptions {
        body_timeout: Duration::from_millis(500),
        header_timeout: Duration::from_millis(500),
        queue: 0,
        workers: 1,
        ..Default::default()
    };
    let packing = SplitPacking::Latency { per_ciphertext: 1 };
    let server = start(packing, options);
    let addr = server.url.trim_start_matches("http://").to_string();
    // A client trickling its body gets 408 once the body timeout passes.
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n"
    )
    .unwrap();
    slow.write_all(&[0u8; 10]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    // A client that stalls in its headers, and one that never sends a byte, are cut off once
    // the header timeout passes (nothing to answer: the connection just closes).
    for start in ["POST /v1/keys HTTP/1.1\r\nHost: x\r\n", ""] {
        let mut stalled = TcpStream::connect(&addr).unwrap();
        stalled.write_all(start.as_bytes()).unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let begun = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = stalled.read_to_end(&mut answer);
        assert!(read.is_ok(), "{start:?}: {read:?} (still open)");
        assert!(begun.elapsed() < Duration::from_secs(5), "{start:?}");
    }
    // A client that hangs up mid-upload leaves the server serving.
    let mut gone = TcpStream::connect(&addr).unwrap();
    write!(
        gone,
        "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    gone.write_all(&[1u8; 500]).unwrap();
    drop(gone);
    assert!(http_get(&server.url, "/health").ends_with("ok\n"));
    // With no queue, concurrent clients are told to retry (503, Retry-After) and all finish.
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let url = server.url.clone();
            std::thread::spawn(move || classify(&client(&url), mnist(), 1, None, Some(&model())))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap().images, 1);
    }
    let metrics = http_get(&server.url, "/metrics");
    let busy: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hegpu_refused_busy_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(busy > 0, "{metrics}");
}

#[test]
fn a_client_that_hangs_up_keeps_its_evaluation_slot_until_the_evaluation_ends() {
    let options = ServiceOptions {
        workers: 1,
        ..Default::default()
    };
    let server = start(SplitPacking::Batch, options);
    let addr = server.url.trim_start_matches("http://").to_string();
    let http = client(&server.url);
    let params = hegpu::ckks::Parameters::from_bytes(&http.params().unwrap()).unwrap();
    let (alice, keys) = ModelClient::new(params, RequestLayout::digits()).unwrap();
    let id = http.register(&keys).unwrap();
    let px = pixels(&mnist().test_images);
    let request = alice.request(0, (0, 8), &px[..8 * DIGIT_PIXELS]).unwrap();
    let gauge = |name: &str| -> u64 {
        let metrics = http_get(&server.url, "/metrics");
        let line = metrics.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        line.trim().parse().unwrap()
    };
    // Alice sends a batch and hangs up while it is evaluated.
    let mut gone = TcpStream::connect(&addr).unwrap();
    write!(
        gone,
        "POST /v1/infer/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        request.len()
    )
    .unwrap();
    gone.write_all(&request).unwrap();
    let begun = std::time::Instant::now();
    while gauge("hegpu_evaluations_running ") == 0 {
        assert!(begun.elapsed() < Duration::from_secs(60), "never evaluated");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(gone);
    // Bob's request waits for the slot Alice's evaluation still holds: never two at once.
    let bob = std::thread::spawn({
        let (url, request, id) = (server.url.clone(), request.clone(), id.clone());
        move || client(&url).infer(&id, &request)
    });
    let mut most = 0;
    while !bob.is_finished() {
        most = most.max(gauge("hegpu_evaluations_running "));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(bob.join().unwrap().is_ok());
    assert_eq!(most, 1, "more evaluations ran at once than --workers");
}

#[test]
fn stopping_finishes_the_request_in_flight_and_accepts_no_more() {
    let packing = SplitPacking::Latency { per_ciphertext: 1 };
    let mut server = start(packing, ServiceOptions::default());
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut upload = TcpStream::connect(&addr).unwrap();
    write!(
        upload,
        "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2000\r\n\r\n"
    )
    .unwrap();
    upload.write_all(&[7u8; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.stop.take().unwrap().send(()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The listener is gone, the upload in progress is not.
    assert!(TcpStream::connect(&addr).is_err());
    upload.write_all(&[7u8; 1000]).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""code":"bad_request""#), "{answer}");
}

#[test]
fn over_tls_a_client_that_trusts_the_certificate_is_answered_and_others_are_refused() {
    let dir = std::env::temp_dir().join(format!("hegpu-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let tls = hegpu_service::Tls {
        certificate: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&tls.certificate, &cert_pem).unwrap();
    std::fs::write(&tls.key, &key_pem).unwrap();
    let packing = SplitPacking::Latency { per_ciphertext: 1 };
    let options = ServiceOptions {
        header_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let server = start_with(packing, options, Some(tls));
    assert!(server.url.starts_with("https://"));
    // A connection that never starts its handshake is closed once the header timeout passes.
    let mut silent = TcpStream::connect(server.url.trim_start_matches("https://")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let begun = std::time::Instant::now();
    assert!(silent.read_to_end(&mut Vec::new()).is_ok(), "still open");
    assert!(begun.elapsed() < Duration::from_secs(5));
    let trusting =
        Client::trusting(&server.url, Duration::from_secs(60), cert_pem.as_bytes()).unwrap();
    let report = classify(&trusting, mnist(), 2, None, Some(&model())).unwrap();
    assert_eq!(report.digits, in_process(packing, 2, 1));
    // Mozilla's roots do not vouch for a self-signed certificate.
    let e = client(&server.url).info().unwrap_err();
    assert!(e.code().is_none(), "{e}");
    // Nor does plain HTTP reach a TLS server.
    let plain = server.url.replace("https://", "http://");
    assert!(client(&plain).info().is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
