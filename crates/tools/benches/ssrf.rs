//! The cost of the SSRF guard per hop: strict URL parsing with the domain lists, and the
//! address check over a mix of public and refused addresses.

use std::hint::black_box;
use std::net::IpAddr;

use amas_tools::ToolsConfig;
use amas_tools::config::{HttpFetchSettings, ToolSettings};
use amas_tools::http::{check_ip, parse_target};
use criterion::{Criterion, criterion_group, criterion_main};

fn settings() -> Option<HttpFetchSettings> {
    let mut cfg = ToolsConfig::load(None, &[]).ok()?;
    match cfg.take("http_fetch")?.settings {
        ToolSettings::HttpFetch(s) => Some(s),
        _ => None,
    }
}

fn bench(c: &mut Criterion) {
    let Some(s) = settings() else { return };
    let urls = [
        "https://docs.example.org/guide/page?x=1",
        "http://0x7f000001:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ];
    c.bench_function("parse_target (4 urls)", |b| {
        b.iter(|| {
            for u in &urls {
                let _ = black_box(parse_target(black_box(u), &s));
            }
        });
    });
    let ips: Vec<IpAddr> = [
        "93.184.216.34",
        "10.0.0.1",
        "169.254.169.254",
        "2606:4700::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    c.bench_function("check_ip (6 addresses)", |b| {
        b.iter(|| {
            for ip in &ips {
                black_box(check_ip(black_box(*ip)));
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
