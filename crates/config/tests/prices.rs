//! `providers.<name>.prices`: dollars per 1000 tokens for the estimated-cost metric. Optional;
//! both keys required, numbers >= 0; every problem reported at once, with its key path.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use amas_config::{LoadOptions, TokenPrices, codes, load};

fn load_providers(yaml: &str) -> Result<amas_config::AmasConfig, amas_config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("providers.yaml"), yaml).unwrap();
    load(&LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        env: vec![],
    })
}

#[test]
fn prices_are_read_and_cost_is_computed_per_1000_tokens() {
    let config = load_providers(
        "providers:\n  openai:\n    kind: openai\n    base_url: https://api.example.com/v1\n    model: m\n    prices: {input_per_1k: 0.5, output_per_1k: 2}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let prices = config.provider_prices["openai"];
    assert_eq!(
        prices,
        TokenPrices {
            input_per_1k: 0.5,
            output_per_1k: 2.0
        }
    );
    assert!((prices.cost(1000, 500) - 1.5).abs() < 1e-12);
    assert!(
        !config.provider_prices.contains_key("local"),
        "no prices: not priced"
    );
}

#[test]
fn bad_prices_are_each_reported_with_their_path() {
    let errors = load_providers(
        "providers:\n  a:\n    kind: openai\n    base_url: https://a.example/v1\n    model: m\n    prices: {input_per_1k: -1, output_per_1k: .nan}\n  b:\n    kind: openai\n    base_url: https://b.example/v1\n    model: m\n    prices: {input_per_1k: 1, output_per_1k: 1, currency: eur}\n  c:\n    kind: openai\n    base_url: https://c.example/v1\n    model: m\n    prices: {input_per_1k: 1}\n",
    )
    .unwrap_err();
    assert!(
        errors.has(codes::INVALID_VALUE, "providers.a.prices.input_per_1k"),
        "{errors}"
    );
    assert!(
        errors.has(codes::INVALID_VALUE, "providers.a.prices.output_per_1k"),
        "{errors}"
    );
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.path.starts_with("providers.b.prices") && e.code == codes::UNKNOWN_KEY),
        "{errors}"
    );
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.path.starts_with("providers.c.prices")),
        "{errors}"
    );
}
