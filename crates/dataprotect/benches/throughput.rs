//! Detection + redaction throughput on a deterministic mixed corpus (1 KB and 100 KB
//! documents; text without findings and PII-dense text), single thread, against a naive
//! baseline: one big `regex` alternation for the same types, replaced with `replace_all`.
//! Beside them, the prompt-injection screen on the same documents (it runs on every tool
//! result, so its cost is read as a ratio to these two).

use std::hint::black_box;
use std::time::Duration;

use amas_dataprotect::{DataProtector, InjectionScreen, TenantKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::Regex;

/// A tiny deterministic generator (xorshift), so every run measures the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "customer",
    "reported",
    "that",
    "invoice",
    "was",
    "delayed",
    "because",
    "shipment",
    "warehouse",
    "team",
    "confirmed",
    "quarterly",
    "revenue",
    "growth",
    "analysis",
    "shows",
    "strong",
    "demand",
    "for",
    "product",
    "line",
    "in",
    "region",
    "north",
    "meeting",
    "agenda",
    "includes",
    "budget",
    "review",
    "and",
    "hiring",
    "plan",
    "please",
    "update",
    "ticket",
    "status",
    "after",
    "deployment",
    "service",
    "latency",
    "improved",
    "by",
    "percent",
    "with",
    "new",
    "cache",
    "layer",
    "Monday",
    "Berlin",
    "Project",
    "Atlas",
    "release",
    "notes",
];

const PII: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "+44 20 7946 0958",
    "(555) 123-4567",
    "123-45-6789",
    "8.8.4.4",
    "DE89 3704 0044 0532 0130 00",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "SSN 078051120",
    "DOB: 1984-07-23",
    "MRN: 00482913",
];

fn document(rng: &mut Rng, size: usize, dense: bool) -> String {
    let mut s = String::with_capacity(size + 64);
    let mut n = 0;
    while s.len() < size {
        n += 1;
        if dense && n % 6 == 0 {
            s.push_str(rng.pick(PII));
        } else {
            s.push_str(rng.pick(WORDS));
        }
        match n % 11 {
            0 => s.push_str(". "),
            5 => s.push_str(", "),
            7 => s.push_str(&format!(" {} ", rng.next() % 1000)),
            _ => s.push(' '),
        }
    }
    s
}

fn corpus(size: usize, count: usize, dense: bool) -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64 ^ u64::from(dense));
    (0..count)
        .map(|_| document(&mut rng, size, dense))
        .collect()
}

fn baseline() -> Option<Regex> {
    Regex::new(concat!(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        r"|\b(?:\d[ -]?){13,19}\b",
        r"|\b\d{3}-\d{2}-\d{4}\b",
        r"|\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}\b",
        r"|\b(?:\d{1,3}\.){3}\d{1,3}\b",
        r"|\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b",
        r"|\b(?:sk-[A-Za-z0-9_-]{20,}|gh[pous]_[A-Za-z0-9]{36}|AKIA[A-Z0-9]{16}|AIza[A-Za-z0-9_-]{35})\b",
        r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
        r"|(?i:dob|date of birth|mrn|ssn|passport)[:# ]+[A-Za-z0-9/-]{5,20}",
    ))
    .ok()
}

fn bench(c: &mut Criterion) {
    let (Ok(p), Some(re)) = (DataProtector::embedded(), baseline()) else {
        eprintln!("setup failed");
        return;
    };
    let key = TenantKey::new(b"bench".to_vec());
    let screen = InjectionScreen::from_config(p.config());
    let sets = [
        ("clean_1KB", corpus(1024, 256, false)),
        ("clean_100KB", corpus(100 * 1024, 4, false)),
        ("dense_1KB", corpus(1024, 256, true)),
        ("dense_100KB", corpus(100 * 1024, 4, true)),
    ];
    for (name, docs) in &sets {
        let bytes: usize = docs.iter().map(String::len).sum();
        let findings: usize = docs
            .iter()
            .filter_map(|d| p.scan(d).ok())
            .map(|s| s.findings.len())
            .sum();
        eprintln!(
            "{name}: {} docs, {bytes} bytes, {findings} findings",
            docs.len()
        );
        let mut g = c.benchmark_group(*name);
        g.throughput(Throughput::Bytes(bytes as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        g.bench_function("amas_detect_redact", |b| {
            b.iter(|| {
                for d in docs {
                    black_box(p.redact_text(black_box(d), &key).ok());
                }
            });
        });
        g.bench_function("injection_screen", |b| {
            b.iter(|| {
                for d in docs {
                    black_box(screen.screen_text(black_box(d)));
                }
            });
        });
        g.bench_function("regex_baseline", |b| {
            b.iter(|| {
                for d in docs {
                    black_box(re.replace_all(black_box(d), "[REDACTED]"));
                }
            });
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
