//! Content safety: lexicon hits with obfuscation, no hits on ordinary words, actions per
//! category from config, and the pluggable classifier path.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use amas_dataprotect::safety::{ClassifierError, SafetyHit};
use amas_dataprotect::{
    Action, Category, ContentClassifier, ContentSafety, DataProtectConfig, LexiconClassifier,
};

fn safety() -> ContentSafety {
    ContentSafety::from_config(&DataProtectConfig::embedded().unwrap())
}

fn cats(text: &str) -> Vec<Category> {
    safety().check(text).categories()
}

#[test]
fn ordinary_words_do_not_fire() {
    let clean = "Scunthorpe United; we assess the skill of a classic therapist over a cocktail in \
        Sussex; grape analysis; the assassin's creed game; Dickens; spices; a pack of cigarettes; \
        passionate; cockpit; shitake mushrooms; Essex; kill the process with SIGTERM; \
        our class assignment; Matsushita; the whole analysis";
    assert_eq!(safety().check(clean).hits, vec![]);
}

#[test]
fn obfuscated_terms_fire() {
    for s in [
        "FUCK YOU",
        "f.u.c.k you",
        "f u c k you",
        "f-u-c-k y-o-u",
        "fuuuuck you",
        "F U C K Y O U",
    ] {
        assert_eq!(cats(s), [Category::Harassment], "{s}");
    }
    // Phonetic respellings are out of scope for a lexicon.
    assert_eq!(cats("phuck you"), Vec::<Category>::new());
    assert_eq!(cats("k1ll y0urs3lf"), [Category::Harassment]);
    assert_eq!(
        cats("I want to k!ll myself"),
        Vec::<Category>::new(),
        "! is not leetspeak here"
    );
    assert_eq!(cats("i want to ki11 myself"), [Category::SelfHarm]);
    assert_eq!(cats("$uicide"), [Category::SelfHarm]);
    assert_eq!(cats("how to m4ke a b0mb"), [Category::IllegalActivity]);
}

#[test]
fn actions_follow_config() {
    let s = safety();
    assert_eq!(s.check("hello there").action, Action::Allow);
    assert_eq!(s.check("you are a bitch").action, Action::Flag);
    assert_eq!(s.check("heil hitler").action, Action::Block);
    let v = s.check("you bitch, heil hitler");
    assert_eq!(v.action, Action::Block);
    let hit = &v.hits[0];
    assert_eq!(&"you bitch, heil hitler"[hit.start..hit.end], "bitch");
    let cfg = amas_dataprotect::EMBEDDED_CONFIG.replace("    hate: block", "    hate: allow");
    let relaxed = ContentSafety::from_config(&DataProtectConfig::parse(&cfg, "t").unwrap());
    assert_eq!(relaxed.check("heil hitler").action, Action::Allow);
}

struct Down;

#[async_trait::async_trait]
impl ContentClassifier for Down {
    async fn classify(&self, _: &str) -> Result<Vec<SafetyHit>, ClassifierError> {
        Err(ClassifierError::Unavailable("connection refused".into()))
    }
}

#[test]
fn pluggable_classifier_errors_are_not_allow() {
    let s = safety();
    let lex = LexiconClassifier::builtin();
    let v = futures::executor::block_on(s.check_with(&lex, "buy cocaine here")).unwrap();
    assert_eq!(v.action, Action::Block);
    assert!(futures::executor::block_on(s.check_with(&Down, "anything")).is_err());
}
