//! The prompt-injection screen judged on real text: public labelled data (deepset's
//! prompt-injections test split; BIPIA's emails, clean and with its attacks inserted), benign
//! prose from published crate READMEs, and hand-written hard cases (text about prompt
//! injection, innocent "ignore"/"instructions", markup and encodings that are not attacks;
//! indirect injections in pages, files and rows). Sources and licences:
//! `tests/data/injection/README.md`.
//!
//! Precision and recall are measured with the shipped configuration (a text counts as flagged
//! when its action is not `allow`) and asserted against floors set just under the measured
//! figures, so a change that makes the screen worse fails here. Run with `--nocapture` to see
//! the table.

#![allow(clippy::expect_used, clippy::panic, reason = "test helpers")]

use std::path::Path;

use amas_dataprotect::{DataProtectConfig, InjectionScreen, safety::Action};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    label: String,
    text: String,
}

fn load(file: &str) -> Vec<(bool, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/injection")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("eval file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Case = serde_json::from_str(l).expect("jsonl row");
            assert!(
                c.label == "injection" || c.label == "benign",
                "{file}: label {}",
                c.label
            );
            (c.label == "injection", c.text)
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    tn: usize,
    fn_: usize,
}

impl Counts {
    fn add(&mut self, o: Self) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
    }
    fn precision(self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Share of benign texts passed unflagged.
    fn specificity(self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// `INJECTION_EVAL_DUMP=1` prints each misclassified case (label, score, signals) for tuning.
fn evaluate(screen: &InjectionScreen, file: &str) -> Counts {
    let dump = std::env::var_os("INJECTION_EVAL_DUMP").is_some();
    let mut c = Counts::default();
    for (injection, text) in load(file) {
        let v = screen.screen_text(&text);
        let flagged = v.action != Action::Allow;
        if dump && flagged != injection {
            let short: String = text.chars().take(160).collect();
            let what = if injection { "MISSED" } else { "FALSE+" };
            eprintln!(
                "{file} {what} {:.2} {:?}: {short:?}",
                v.score,
                v.signal_names()
            );
        }
        match (injection, flagged) {
            (true, true) => c.tp += 1,
            (true, false) => c.fn_ += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
        }
    }
    c
}

/// Floors per source: (file, min precision, min recall, min specificity), set a little under
/// the figures measured on 2026-12-07 (in `docs/data-protection.md`).
const FLOORS: &[(&str, f64, f64, f64)] = &[
    ("deepset.jsonl", 0.95, 0.38, 0.98),
    ("bipia_email.jsonl", 0.95, 0.38, 0.98),
    // Benign only: recall and precision do not apply.
    ("crate_docs.jsonl", 0.0, 0.0, 0.98),
    ("handwritten.jsonl", 0.9, 0.9, 0.9),
    ("heldout_deepset_train.jsonl", 0.95, 0.24, 0.98),
    ("heldout_bipia_email_train.jsonl", 0.95, 0.24, 0.98),
];

#[test]
fn precision_and_recall_on_the_evaluation_set_stay_above_their_floors() {
    let config = DataProtectConfig::embedded().expect("embedded config");
    let screen = InjectionScreen::from_config(&config);
    let mut total = Counts::default();
    eprintln!("source              n  tp  fp  tn  fn  precision recall specificity");
    for &(file, min_p, min_r, min_s) in FLOORS {
        let c = evaluate(&screen, file);
        total.add(c);
        eprintln!(
            "{file:<18} {:>3} {:>3} {:>3} {:>3} {:>3}  {:.3}     {:.3}  {:.3}",
            c.tp + c.fp + c.tn + c.fn_,
            c.tp,
            c.fp,
            c.tn,
            c.fn_,
            c.precision(),
            c.recall(),
            c.specificity()
        );
        assert!(
            c.precision() >= min_p,
            "{file}: precision {}",
            c.precision()
        );
        assert!(c.recall() >= min_r, "{file}: recall {}", c.recall());
        assert!(
            c.specificity() >= min_s,
            "{file}: specificity {}",
            c.specificity()
        );
    }
    eprintln!(
        "all                {:>3} {:>3} {:>3} {:>3} {:>3}  {:.3}     {:.3}  {:.3}",
        total.tp + total.fp + total.tn + total.fn_,
        total.tp,
        total.fp,
        total.tn,
        total.fn_,
        total.precision(),
        total.recall(),
        total.specificity()
    );
    assert!(total.precision() >= 0.95, "precision {}", total.precision());
    assert!(total.recall() >= 0.4, "recall {}", total.recall());
}
