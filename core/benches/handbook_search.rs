//! Library search over 10,000 documents of realistic length: p50, p95 and max latency over a
//! mix of queries (accent-free, accented, document numbers, prefixes).
//!
//! `cargo bench -p thudo-core --bench handbook_search` (`THUDO_BENCH_DOCS` to change the count)

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::time::Instant;

use thudo_core::handbook::library::{Library, LibraryDocument};

const WORDS: &[&str] = &[
    "Đảng",
    "đảng viên",
    "chi bộ",
    "nghị quyết",
    "chỉ thị",
    "quy định",
    "kết luận",
    "thực hiện",
    "phát triển",
    "kinh tế",
    "xã hội",
    "khoa học",
    "công nghệ",
    "đổi mới",
    "sáng tạo",
    "chuyển đổi số",
    "quốc gia",
    "nhân dân",
    "cán bộ",
    "tổ chức",
    "kiểm tra",
    "giám sát",
    "kỷ luật",
    "đạo đức",
    "tư tưởng",
    "Hồ Chí Minh",
    "học tập",
    "làm theo",
    "phong cách",
    "lãnh đạo",
    "chỉ đạo",
    "Trung ương",
    "Bộ Chính trị",
    "Ban Bí thư",
    "thành phố",
    "Hà Nội",
    "quận",
    "huyện",
    "phường",
    "xã",
    "đảng phí",
    "sinh hoạt",
    "đại hội",
    "nhiệm kỳ",
    "bầu cử",
    "ứng cử",
    "đề cử",
    "quần chúng",
    "thanh niên",
    "phụ nữ",
    "mặt trận",
    "tổ quốc",
    "quốc phòng",
    "an ninh",
    "đối ngoại",
    "hội nhập",
    "giáo dục",
    "đào tạo",
    "y tế",
    "văn hóa",
    "môi trường",
    "biến đổi khí hậu",
    "nông nghiệp",
    "công nghiệp",
    "dịch vụ",
    "du lịch",
    "hạ tầng",
    "giao thông",
    "đô thị",
    "nông thôn",
    "xây dựng",
    "chỉnh đốn",
    "tham nhũng",
    "lãng phí",
    "tiêu cực",
    "cải cách",
    "hành chính",
    "pháp luật",
    "hiến pháp",
    "quyền",
    "nghĩa vụ",
    "trách nhiệm",
    "năng lực",
    "hiệu quả",
    "mục tiêu",
    "giải pháp",
    "nhiệm vụ",
    "kế hoạch",
];

fn body(seed: usize, words: usize) -> String {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        out.push(if i % 17 == 16 { '.' } else { ' ' });
    }
    out
}

fn main() {
    let n: usize = std::env::var("THUDO_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::open(&dir.path().join("library.db")).unwrap();
    let kinds = [
        ("NQ", "Nghị quyết"),
        ("CT", "Chỉ thị"),
        ("QĐ", "Quy định"),
        ("KL", "Kết luận"),
    ];
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let docs: Vec<LibraryDocument> = chunk
            .iter()
            .map(|&i| {
                let (code, kind) = kinds[i % 4];
                LibraryDocument {
                    id: format!("doc-{i}"),
                    number: format!("{}-{code}/TW", i + 1),
                    issuer: "Ban Chấp hành Trung ương".into(),
                    issued_on: format!("20{:02}-{:02}-01", 10 + i % 16, 1 + i % 12),
                    kind: kind.into(),
                    title: format!("{kind} số {}-{code}/TW về {}", i + 1, body(i * 7 + 3, 12)),
                    body: body(i, 450), // about 3 KB of text, a short resolution
                    attachments: vec![],
                }
            })
            .collect();
        lib.upsert(&docs).unwrap();
    }
    let indexed = started.elapsed();
    let size = std::fs::metadata(dir.path().join("library.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let queries = [
        "nghi quyet 57",
        "nghị quyết",
        "dang phi",
        "đảng phí",
        "chuyen doi so",
        "khoa học công nghệ",
        "57-NQ/TW",
        "1234-CT/TW",
        "ho chi minh",
        "bien doi khi hau",
        "cải cách hành chính",
        "chi bo sinh h",
        "tham nhung lang phi",
        "giáo dục đào tạo",
        "ha noi",
        "QUỐC PHÒNG AN NINH",
        "kế hoạch",
        "xay dung chinh don",
        // Typos (a swapped, a missing, an extra letter) and Telex typed without marks.
        "nghi quyte",
        "dnag phi",
        "chuyen doii so",
        "nghij quyeets",
    ];
    let mut times = Vec::new();
    for round in 0..10 {
        for q in &queries {
            let started = Instant::now();
            let hits = lib.search(q, 20).unwrap();
            let took = started.elapsed();
            if round > 0 {
                times.push(took);
            }
            if round == 9 && std::env::var_os("THUDO_BENCH_VERBOSE").is_some() {
                println!(
                    "{q:>24}: {:.2} ms, {} hits",
                    took.as_secs_f64() * 1e3,
                    hits.len()
                );
            }
            assert!(!hits.is_empty() || q.contains("1234"), "{q}");
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "library search: {n} documents (~3 KB each, index built in {:.1} s, file {:.1} MB); {} queries: \
         p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms (top 20 with snippets)",
        indexed.as_secs_f64(),
        size as f64 / 1e6,
        times.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );

    // Typo correction scans the vocabulary, which this corpus keeps small: add 50,000
    // distinct made-up words (a large real library's size), then time the first typo query
    // after the change (which reads the vocabulary) and the ones after it.
    let mut x: u64 = 88_172_645_463_325_252;
    let mut words = Vec::with_capacity(50_000);
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 3 + (x % 7) as usize;
        let word: String = (0..len)
            .map(|i| (b'a' + ((x >> (i * 5)) % 26) as u8) as char)
            .collect();
        words.push(word);
    }
    for (i, chunk) in words.chunks(5_000).enumerate() {
        lib.upsert(&[LibraryDocument {
            id: format!("words-{i}"),
            number: String::new(),
            issuer: String::new(),
            issued_on: String::new(),
            kind: String::new(),
            title: "từ điển".into(),
            body: chunk.join(" "),
            attachments: vec![],
        }])
        .unwrap();
    }
    let started = Instant::now();
    lib.search("nghi quyte", 20).unwrap();
    let first = started.elapsed();
    let mut typo_times = Vec::new();
    for _ in 0..20 {
        for q in ["nghi quyte", "dnag phi", "chuyen doii so"] {
            let started = Instant::now();
            lib.search(q, 20).unwrap();
            typo_times.push(started.elapsed());
        }
    }
    typo_times.sort();
    println!(
        "typo queries with a vocabulary of {} words: first after a change {:.1} ms, then p50 {:.2} ms, p95 {:.2} ms",
        lib.vocabulary_size().unwrap(),
        first.as_secs_f64() * 1e3,
        typo_times[typo_times.len() / 2].as_secs_f64() * 1e3,
        typo_times[typo_times.len() * 95 / 100].as_secs_f64() * 1e3,
    );
}
