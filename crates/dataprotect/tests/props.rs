//! Property tests: redaction is idempotent, no detected span survives, JSON keeps its shape.

use amas_dataprotect::{DataProtector, TenantKey};
use proptest::prelude::*;
use serde_json::Value;

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice@example.com".to_owned()),
        Just("4111 1111 1111 1111".to_owned()),
        Just("5555-5555-5555-4444".to_owned()),
        Just("123-45-6789".to_owned()),
        Just("+44 20 7946 0958".to_owned()),
        Just("(555) 123-4567".to_owned()),
        Just("DE89 3704 0044 0532 0130 00".to_owned()),
        Just("8.8.8.8".to_owned()),
        Just("2001:4860:4860::8888".to_owned()),
        Just("ghp_abcdefghijklmnopqrstuvwxyz0123456789".to_owned()),
        Just("AKIAIOSFODNN7EXAMPLE".to_owned()),
        Just("DOB: 1984-07-23".to_owned()),
        Just("MRN: 00482913".to_owned()),
        Just("SSN 123456789".to_owned()),
        Just("Dr. Maria Lopez".to_owned()),
        Just("password=hunter2!".to_owned()),
        Just("api_key: Zx81kQ2vLm9PwR4tYb7N".to_owned()),
        "[a-zA-Z]{1,8}",
        "[0-9]{1,6}",
        "[ .,:;@\\-\\n()\\[\\]*=+/#]{1,3}",
        "[a-z0-9@.:\\-_ ]{1,12}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        document().prop_map(Value::String),
        (0u32..100_000).prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_shape(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        (Value::Number(_), Value::Number(_)) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn redaction_is_idempotent_and_leaves_no_finding(doc in document()) {
        let p = DataProtector::embedded().unwrap();
        let key = TenantKey::new(b"prop".to_vec());
        let once = p.redact_text(&doc, &key).unwrap();
        let twice = p.redact_text(&once.redacted, &key).unwrap();
        prop_assert_eq!(&twice.redacted, &once.redacted);
        prop_assert!(twice.findings.is_empty(), "{:?}", twice.findings);
    }

    #[test]
    fn no_detected_span_survives(doc in document()) {
        let p = DataProtector::embedded().unwrap();
        let key = TenantKey::new(b"prop".to_vec());
        let r = p.redact_text(&doc, &key).unwrap();
        for f in &r.findings {
            let original = &doc[f.start..f.end];
            // Masks keep at most the last four digits: anything longer must be gone.
            if original.len() > 4 {
                prop_assert!(!r.redacted.contains(original), "{:?} survived in {:?}", original, r.redacted);
            }
        }
    }

    #[test]
    fn json_redaction_keeps_structure(v in json_value()) {
        let p = DataProtector::embedded().unwrap();
        let key = TenantKey::new(b"prop".to_vec());
        let r = p.redact_json(&v, &key).unwrap();
        prop_assert!(same_shape(&v, &r.redacted));
        let again = p.redact_json(&r.redacted, &key).unwrap();
        prop_assert_eq!(&again.redacted, &r.redacted);
    }
}
