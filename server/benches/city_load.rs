//! The backend at city scale, on loopback: `thudo-server` processes (one, then two on one
//! database) driven by many simulated devices and validators.
//!
//! - **Devices**: each registers (nonce, ID token, registration), pushes 10 notes and pulls
//!   them back, 64 devices at a time, every request to an instance picked in turn.
//! - **Validators**: 100 enrolled validators upload a city's day of taps in batches of 1,000,
//!   8 uploads at a time; every tap carries its scan, which the backend verifies (issuer and
//!   phone signatures) before it stores and charges it under the caps.
//!
//! Printed: requests/s, p50/p99 latency, taps ingested and charged per second, each server's
//! peak memory, and bytes on the wire per synced record with and without gzip.
//!
//! `cargo bench -p thudo-server --bench city_load` runs SQLite; under
//! `scripts/with-postgres.sh` PostgreSQL too. `THUDO_LOAD_DEVICES` (default 1,000) and
//! `THUDO_LOAD_TAPS` (default 1,000,000) bound the run.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::backend::{TapReceipt, TapUpload};
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::validator::{Reason, Tap};
use thudo_core::transit::{wire, Category, Product};

const VALIDATORS: usize = 100;
const RIDERS: usize = 20_000;
const TAPS_PER_UPLOAD: usize = 1_000;
const DEVICES_IN_FLIGHT: usize = 64;
const UPLOADS_IN_FLIGHT: usize = 8;
const NOTES_PER_DEVICE: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// What every configuration is driven with: one issuer keyring and a day of signed taps.
struct Workload {
    issuer_keys: Vec<u8>,
    /// Upload bodies (JSON), validator `i % VALIDATORS`.
    uploads: Vec<(usize, String)>,
    taps: usize,
}

fn workload(taps: usize) -> Workload {
    let now = chrono::Utc::now().timestamp() as u32;
    let (from, until) = (now - 86_400, now + 2 * 365 * 86_400);
    let (issuer, pkcs8) = IssuerKey::generate(1, from, until).unwrap();
    let issuer_keys = serde_json::to_vec(&json!([{
        "key_id": 1, "pkcs8": thudo_core::hex::encode(&pkcs8),
        "valid_from": from, "valid_until": until,
    }]))
    .unwrap();
    let riders: Vec<(SoftwareKey, Vec<u8>, u64)> = (0..RIDERS)
        .map(|i| {
            let (key, _) = SoftwareKey::generate().unwrap();
            let card_id = 100_000_000_000_000 + i as u64;
            let credential = issuer
                .issue(
                    &CredentialRequest {
                        card_id,
                        product: Product::PayAsYouGo,
                        category: Category::Standard,
                        route: 0,
                        pass_valid_from: now - 60,
                        pass_valid_until: now + 365 * 86_400,
                        device_public_key: key.public_key().to_vec(),
                        lifetime_secs: 72 * 3600,
                        with_holder: false,
                    },
                    now,
                )
                .unwrap();
            (key, credential.to_vec(), card_id)
        })
        .collect();
    // The day's taps, spread over the next 60 hours (inside the credentials' 72), signed on
    // two threads. Tap `t` is rider `t % RIDERS`'s QR number `t / RIDERS + 1` on validator
    // `t % VALIDATORS`.
    let per_validator = taps.div_ceil(VALIDATORS);
    let make = |t: usize| -> Tap {
        let (key, credential, card_id) = &riders[t % RIDERS];
        let at = u64::from(now) + (t as u64 * 60 * 3600) / taps as u64;
        let counter = (t / RIDERS + 1) as u32;
        let message = wire::tap_message(credential, at as u32, counter);
        let signature = key.sign(&message).unwrap();
        Tap {
            seq: (t / VALIDATORS + 1) as u64,
            at,
            route: 32,
            accepted: true,
            reason: Reason::Ok,
            card_id: Some(*card_id),
            product: Some(Product::PayAsYouGo),
            qr_timestamp: Some(at as u32),
            qr_counter: Some(counter),
            qr: Some(wire::qr_text(credential, at as u32, counter, &signature)),
            gate: None,
        }
    };
    let mut by_validator: Vec<Vec<Tap>> = (0..VALIDATORS)
        .map(|_| Vec::with_capacity(per_validator))
        .collect();
    let halves: Vec<Vec<Tap>> = std::thread::scope(|s| {
        let make = &make;
        let mid = taps / 2;
        let a = s.spawn(move || (0..mid).map(make).collect::<Vec<_>>());
        let b = s.spawn(move || (mid..taps).map(make).collect::<Vec<_>>());
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for (t, tap) in halves.into_iter().flatten().enumerate() {
        by_validator[t % VALIDATORS].push(tap);
    }
    let mut uploads = Vec::new();
    for (v, taps) in by_validator.into_iter().enumerate() {
        for chunk in taps.chunks(TAPS_PER_UPLOAD) {
            let body = serde_json::to_string(&TapUpload {
                taps: chunk.to_vec(),
                drained: false,
                exported_secs_ago: 0,
            })
            .unwrap();
            uploads.push((v, body));
        }
    }
    // Interleave validators, as a city's uploads arrive.
    uploads.sort_by_key(|(v, _)| *v);
    let mut interleaved = Vec::with_capacity(uploads.len());
    let rounds = uploads.len().div_ceil(VALIDATORS);
    for r in 0..rounds {
        for v in 0..VALIDATORS {
            let i = v * rounds + r;
            if let Some(u) = uploads.get(i).filter(|(uv, _)| *uv == v) {
                interleaved.push(u.clone());
            }
        }
    }
    if interleaved.len() != uploads.len() {
        interleaved = uploads;
    }
    Workload {
        issuer_keys,
        uploads: interleaved,
        taps,
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_thudo-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--db",
                db,
                "--test-identity-provider",
                "--sandbox-payments",
                "--no-rate-limits",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.starts_with("listening on ") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the server stopped");
        }
        Server {
            child,
            url: line.trim().trim_start_matches("listening on ").to_owned(),
        }
    }

    /// Peak resident memory, MiB.
    fn peak_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn add(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.0.lock().unwrap().clone();
        v.sort();
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// JSON bodies without reqwest's `json` feature.
trait SendJson {
    fn send_json(self, body: Value) -> Self;
}

impl SendJson for reqwest::RequestBuilder {
    fn send_json(self, body: Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

fn http(gzip: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .tls_backend_preconfigured(thudo_core::sync::client::tls_config(&[], &[]).unwrap())
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120));
    if gzip { b } else { b.no_gzip() }.build().unwrap()
}

async fn call(
    c: &reqwest::Client,
    lat: &Latencies,
    req: reqwest::RequestBuilder,
) -> (Value, usize) {
    let started = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    lat.add(started.elapsed());
    let _ = c;
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    (
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        body.len(),
    )
}

/// Wire bytes of a pull of `collection`, read without decoding (`gzip` or identity).
async fn pull_size(url: &str, token: &str, gzip: bool) -> (usize, usize) {
    let c = http(false);
    let mut req = c
        .get(format!(
            "{url}/v1/sync/pull?collection=handbook.note&limit=100"
        ))
        .bearer_auth(token);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let r = req.send().await.unwrap();
    let zipped = r.headers().get("content-encoding").is_some();
    let body = r.bytes().await.unwrap();
    let records = if zipped {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        serde_json::from_slice::<Value>(&out).unwrap()["changes"]
            .as_array()
            .map_or(0, Vec::len)
    } else {
        serde_json::from_slice::<Value>(&body).unwrap()["changes"]
            .as_array()
            .map_or(0, Vec::len)
    };
    (body.len(), records)
}

struct Row {
    engine: &'static str,
    instances: usize,
    devices: usize,
    device_secs: f64,
    requests: usize,
    p50: Duration,
    p99: Duration,
    taps: usize,
    tap_secs: f64,
    upload_p50: Duration,
    upload_p99: Duration,
    charged_vnd: u64,
    peak_mib: Vec<f64>,
    bytes_plain: f64,
    bytes_gzip: f64,
}

async fn run(
    engine: &'static str,
    db: &str,
    instances: usize,
    devices: usize,
    w: &Workload,
) -> Row {
    // The issuer keyring and the validators' enrolment codes, written before the servers start.
    let codes: Vec<String> = {
        let storage = thudo_server::open_storage(db).unwrap();
        storage.set_setting("issuer_keys", &w.issuer_keys).unwrap();
        (0..VALIDATORS)
            .map(|i| {
                thudo_server::transit::validators::create_enrolment(
                    storage.as_ref(),
                    &format!("bus {i}"),
                    thudo_server::transit::validators::Binding::Bus(32),
                    3600,
                )
                .unwrap()
                .0
            })
            .collect()
    };
    let servers: Vec<Server> = (0..instances).map(|_| Server::start(db)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let next = AtomicUsize::new(0);
    let pick = || urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()].clone();
    let c = http(true);
    let lat = Latencies::default();

    // Devices: register, push, pull.
    let started = Instant::now();
    let tokens = Mutex::new(Vec::new());
    let device = |d: usize| {
        let (c, lat, tokens) = (&c, &lat, &tokens);
        let home = pick();
        let other = pick();
        async move {
            let citizen = format!("{:012}", 1_000_000 + d);
            let (nonce, _) = call(c, lat, c.post(format!("{home}/v1/identity/nonce"))).await;
            let nonce = nonce["nonce"].as_str().unwrap().to_owned();
            let (token, _) = call(
                c,
                lat,
                c.post(format!("{home}/test/identity/token"))
                    .send_json(json!({"citizen_id": citizen, "nonce": nonce})),
            )
            .await;
            let (reg, _) = call(
                c,
                lat,
                c.post(format!("{home}/v1/devices")).send_json(json!({
                    "id_token": token["id_token"], "device_name": format!("phone {d}"), "role": "phone"})),
            )
            .await;
            let token = reg["token"].as_str().unwrap().to_owned();
            let mutations: Vec<Value> = (0..NOTES_PER_DEVICE)
                .map(|n| json!({"idempotency_key": format!("k{d}-{n}"), "seq": n + 1,
                    "collection": "handbook.note", "record_id": format!("n{n}"), "op": "put",
                    "payload": {"id": format!("n{n}"), "document_id": "nq-57-2024",
                        "text": format!("Ghi chú số {n} về nghị quyết: học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh"),
                        "updated_at": 1_790_000_000 + n},
                    "hlc": format!("{:013}-000000-d{d}", 1_790_000_000_000u64 + n as u64)}))
                .collect();
            call(
                c,
                lat,
                c.post(format!("{other}/v1/sync/push"))
                    .bearer_auth(&token)
                    .send_json(json!({ "mutations": mutations })),
            )
            .await;
            let (page, _) = call(
                c,
                lat,
                c.get(format!(
                    "{home}/v1/sync/pull?collection=handbook.note&limit=100"
                ))
                .bearer_auth(&token),
            )
            .await;
            assert_eq!(
                page["changes"].as_array().map_or(0, Vec::len),
                NOTES_PER_DEVICE
            );
            tokens.lock().unwrap().push(token);
        }
    };
    use futures_util::StreamExt;
    futures_util::stream::iter(0..devices)
        .map(device)
        .buffer_unordered(DEVICES_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let device_secs = started.elapsed().as_secs_f64();
    let (requests, p50, p99) = (lat.count(), lat.percentile(0.5), lat.percentile(0.99));
    let token = tokens.lock().unwrap()[0].clone();
    let (plain, n) = pull_size(&urls[0], &token, false).await;
    let (zipped, m) = pull_size(&urls[0], &token, true).await;
    assert_eq!((n, m), (NOTES_PER_DEVICE, NOTES_PER_DEVICE));

    // Validators: enrol, then upload the day.
    let mut validator_tokens = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let (r, _) = call(
            &c,
            &lat,
            c.post(format!("{}/v1/validators", pick()))
                .send_json(json!({"enrolment_code": code, "device_name": format!("bus {i}")})),
        )
        .await;
        validator_tokens.push(r["token"].as_str().unwrap().to_owned());
    }
    let uploads = Latencies::default();
    let charged = AtomicU64::new(0);
    let stored = AtomicU64::new(0);
    let started = Instant::now();
    let upload = |(v, body): &(usize, String)| {
        let (c, uploads, charged, stored) = (&c, &uploads, &charged, &stored);
        let url = pick();
        let token = validator_tokens[*v].clone();
        let body = body.clone();
        async move {
            let (r, _) = call(
                c,
                uploads,
                c.post(format!("{url}/v1/transit/taps"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            let r: TapReceipt = serde_json::from_value(r).unwrap();
            charged.fetch_add(r.charged_vnd, Ordering::Relaxed);
            stored.fetch_add(u64::from(r.stored), Ordering::Relaxed);
        }
    };
    futures_util::stream::iter(w.uploads.iter())
        .map(upload)
        .buffer_unordered(UPLOADS_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let tap_secs = started.elapsed().as_secs_f64();
    assert_eq!(stored.load(Ordering::Relaxed) as usize, w.taps);
    let peak_mib = servers.iter().map(Server::peak_mib).collect();
    drop(servers);
    Row {
        engine,
        instances,
        devices,
        device_secs,
        requests,
        p50,
        p99,
        taps: w.taps,
        tap_secs,
        upload_p50: uploads.percentile(0.5),
        upload_p99: uploads.percentile(0.99),
        charged_vnd: charged.load(Ordering::Relaxed),
        peak_mib,
        bytes_plain: plain as f64 / n as f64,
        bytes_gzip: zipped as f64 / m as f64,
    }
}

/// The most taps per second this machine can take in: two P-256 verifications each (the
/// issuer's over the credential, the phone's over the QR), on every core, for three seconds.
fn verification_limit() -> (f64, usize) {
    let (issuer, _) = SoftwareKey::generate().unwrap();
    let (phone, _) = SoftwareKey::generate().unwrap();
    let credential = b"thudo/transit/credential/v1 a credential's 60 bytes, signed".to_vec();
    let tap = b"thudo/transit/tap/v1 a QR's 132 bytes, signed by the phone".to_vec();
    let (issuer_sig, phone_sig) = (issuer.sign(&credential).unwrap(), phone.sign(&tap).unwrap());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let window = Duration::from_secs(3);
    let deadline = Instant::now() + window;
    let verified: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        assert!(
                            thudo_core::crypto::p256::verify(
                                issuer.public_key(),
                                &credential,
                                &issuer_sig
                            ) && thudo_core::crypto::p256::verify(
                                phone.public_key(),
                                &tap,
                                &phone_sig
                            )
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    (verified as f64 / window.as_secs_f64(), threads)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; this binary takes no arguments of its own.
    let devices = env_or("THUDO_LOAD_DEVICES", 1_000);
    let taps = env_or("THUDO_LOAD_TAPS", 1_000_000);
    let started = Instant::now();
    let w = workload(taps);
    println!(
        "workload: {taps} taps by {RIDERS} riders on {VALIDATORS} validators, {} uploads, signed in {:.1} s",
        w.uploads.len(),
        started.elapsed().as_secs_f64()
    );
    let (limit, threads) = verification_limit();
    println!(
        "verification limit: {limit:.0} taps/s (two P-256 verifications each, {threads} threads, nothing else running)"
    );
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("THUDO_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    let mut rows = Vec::new();
    for instances in [1, 2] {
        let db = dir
            .path()
            .join(format!("load-{instances}.db"))
            .to_string_lossy()
            .into_owned();
        rows.push(run("SQLite", &db, instances, devices, &w).await);
        let _ = std::fs::remove_file(&db);
        if let Some(admin) = &postgres {
            let db = thudo_server::storage::create_database(
                admin,
                &format!("thudo_load_{instances}_{}", std::process::id()),
            )
            .unwrap();
            rows.push(run("PostgreSQL", &db, instances, devices, &w).await);
        }
    }
    println!();
    println!("| engine | instances | devices | requests/s | p50 ms | p99 ms | taps | taps/s | of the verification limit | upload p50 ms | upload p99 ms | charged VND | server peak MiB | bytes/record (plain → gzip) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.0} | 1/{:.1} | {} | {} | {} | {} | {:.0} → {:.0} |",
            r.engine,
            r.instances,
            r.devices,
            r.requests as f64 / r.device_secs,
            ms(r.p50),
            ms(r.p99),
            r.taps,
            r.taps as f64 / r.tap_secs,
            limit / (r.taps as f64 / r.tap_secs),
            ms(r.upload_p50),
            ms(r.upload_p99),
            r.charged_vnd,
            r.peak_mib
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" + "),
            r.bytes_plain,
            r.bytes_gzip,
        );
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
}
