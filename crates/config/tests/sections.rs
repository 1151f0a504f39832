//! The layered loader as other crates use it ([`Section`]): `tools.yaml` and
//! `dataprotect.yaml` of a config directory merge over the embedded files key by key where
//! entries are independent and replace whole units elsewhere, `AMAS__TOOLS__...` and
//! `AMAS__DATAPROTECT__...` set single keys, a command-line file is the top layer, and every
//! problem names the file (or variable) it came from. The sections here are probes that only
//! read the merged mapping; the real validation lives in `amas-tools` and `amas-dataprotect`.

use std::path::Path;

use amas_config::{Checker, KeyPath, Layers, LoadOptions, Section, codes, load_section};
use yaml_serde::{Mapping, Value};

/// The merged `tools` mapping as it reaches validation; a tool named `bad` is reported.
struct Tools(Mapping);

impl Section for Tools {
    const NAME: &'static str = "tools";

    fn validate(section: &Mapping, cx: &mut Checker<'_>) -> Option<Self> {
        if section.contains_key("bad") {
            cx.invalid(&KeyPath::of(&["tools", "bad", "timeout"]), "bad on purpose");
            return None;
        }
        Some(Self(section.clone()))
    }
}

struct DataProtect(Mapping);

impl Section for DataProtect {
    const NAME: &'static str = "dataprotect";

    fn validate(section: &Mapping, _: &mut Checker<'_>) -> Option<Self> {
        Some(Self(section.clone()))
    }
}

fn at<'a>(map: &'a Mapping, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = map.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn opts(dir: Option<&Path>, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        config_dir: dir.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The allowed path first: with nothing but the embedded files, both sections are there.
#[test]
fn embedded_tools_and_dataprotect_are_sections() {
    let Tools(tools) = load_section(&opts(None, &[])).unwrap();
    assert_eq!(tools.len(), 9, "every embedded tool");
    assert_eq!(at(&tools, "calculator.timeout"), Some(&Value::from("1s")));
    let DataProtect(dp) = load_section(&opts(None, &[])).unwrap();
    assert_eq!(at(&dp, "redaction.modes.email"), Some(&Value::from("mask")));
}

/// A partial file changes only what it names: one key of one tool, one redaction mode, one DLP
/// action. Everything else keeps the embedded value, so overriding `email` cannot drop the
/// `block` of `credit_card`. Units are replaced whole (a schema, the database), and `null`
/// removes (a tool, a key).
#[test]
fn partial_files_merge_key_by_key_and_replace_units_whole() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.yaml"),
        "tools:\n  calculator:\n    timeout: 2s\n    parameters: { type: object }\n  \
         sql_query:\n    settings: { row_limit: 5, database: { sqlite_path: /tmp/r.db } }\n  \
         dangerous_tool: null\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dataprotect.yaml"),
        "redaction:\n  modes: { email: hash }\ndlp:\n  actions: { email: allow }\n",
    )
    .unwrap();
    let Tools(tools) = load_section(&opts(Some(dir.path()), &[])).unwrap();
    assert_eq!(at(&tools, "calculator.timeout"), Some(&Value::from("2s")));
    assert_eq!(at(&tools, "calculator.risk"), Some(&Value::from("low")));
    assert!(
        at(&tools, "calculator.parameters.properties").is_none(),
        "a schema is replaced whole, never half-merged"
    );
    assert_eq!(
        at(&tools, "sql_query.settings.row_limit"),
        Some(&Value::from(5))
    );
    assert!(
        at(&tools, "sql_query.settings.blocked_tables").is_some(),
        "other settings keep their defaults"
    );
    assert!(at(&tools, "http_fetch.settings.deny_domains").is_some());
    assert!(!tools.contains_key("dangerous_tool"), "null removes a tool");
    assert_eq!(tools.len(), 8);

    let DataProtect(dp) = load_section(&opts(Some(dir.path()), &[])).unwrap();
    assert_eq!(at(&dp, "redaction.modes.email"), Some(&Value::from("hash")));
    assert_eq!(at(&dp, "redaction.modes.phone"), Some(&Value::from("mask")));
    assert_eq!(at(&dp, "dlp.actions.email"), Some(&Value::from("allow")));
    assert_eq!(
        at(&dp, "dlp.actions.credit_card"),
        Some(&Value::from("block"))
    );
    assert_eq!(at(&dp, "min_confidence"), Some(&Value::from(0.45)));
}

/// `AMAS__TOOLS__<TOOL>__<KEY>` and `AMAS__DATAPROTECT__<KEY>...` set one key above the files;
/// a file named on the command line is above them.
#[test]
fn env_sets_single_keys_and_the_command_line_file_is_on_top() {
    let env = [
        ("AMAS__TOOLS__CALCULATOR__MAX_OUTPUT_BYTES", "8"),
        (
            "AMAS__TOOLS__HTTP_FETCH__SETTINGS__ALLOW_DOMAINS",
            "[example.com]",
        ),
        ("AMAS__DATAPROTECT__REDACTION__MODES__EMAIL", "tag"),
        ("AMAS__DATAPROTECT__MIN_CONFIDENCE", "0.6"),
    ];
    let mut layers = Layers::load(&opts(None, &env));
    let Tools(tools) = layers.section().unwrap();
    let DataProtect(dp) = layers.section().unwrap();
    layers.finish(Some(())).unwrap();
    assert_eq!(
        at(&tools, "calculator.max_output_bytes"),
        Some(&Value::from(8))
    );
    assert_eq!(at(&tools, "calculator.timeout"), Some(&Value::from("1s")));
    let allow = at(&tools, "http_fetch.settings.allow_domains").unwrap();
    assert_eq!(allow, &Value::Sequence(vec![Value::from("example.com")]));
    assert_eq!(at(&dp, "redaction.modes.email"), Some(&Value::from("tag")));
    assert_eq!(at(&dp, "min_confidence"), Some(&Value::from(0.6)));

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, "redaction:\n  modes: { email: hash }\n").unwrap();
    let mut layers = Layers::for_section::<DataProtect>(&opts(None, &env));
    layers.overlay("dataprotect.yaml", &rules);
    let DataProtect(dp) = layers.section().unwrap();
    assert_eq!(at(&dp, "redaction.modes.email"), Some(&Value::from("hash")));
    assert_eq!(at(&dp, "min_confidence"), Some(&Value::from(0.6)));
}

/// Problems of every file come back together, each with its file and key path; a file's
/// unknown top-level key is reported, and loading one section ignores the others' variables.
#[test]
fn problems_of_every_file_are_reported_together_with_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.yaml"),
        "tools:\n  bad: { timeout: 0s }\ntool: {}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("dataprotect.yaml"), "redaction: [\n").unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "runtime:\n  max_concurrent_tasks: 0\n",
    )
    .unwrap();
    let mut layers = Layers::load(&opts(Some(dir.path()), &[("AMAS__TOOL__X__TIMEOUT", "1s")]));
    let core = layers.core();
    let tools = layers.section::<Tools>();
    let errors = layers.finish(core.zip(tools)).err().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let by = |path: &str| errors.0.iter().find(|e| e.path == path);
    let bad = by("tools.bad.timeout").expect("the tool problem");
    assert_eq!(bad.file, file("tools.yaml"));
    assert!(
        errors.0.iter().any(|e| e.path == "tool"
            && e.file == file("tools.yaml")
            && e.code == codes::UNKNOWN_KEY),
        "{errors}"
    );
    let parse = errors.0.iter().find(|e| e.code == codes::PARSE).unwrap();
    assert_eq!(parse.file, file("dataprotect.yaml"));
    assert_eq!(
        by("runtime.max_concurrent_tasks").map(|e| e.file.clone()),
        Some(file("settings.yaml"))
    );
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.file == "env AMAS__TOOL__X__TIMEOUT"),
        "a misspelt section variable is reported: {errors}"
    );

    let one = load_section::<Tools>(&opts(Some(dir.path()), &[("AMAS__SERVR__LISTEN", "x")]))
        .err()
        .unwrap();
    assert!(
        one.0.iter().all(|e| e.file == file("tools.yaml")),
        "only the tools file is read: {one}"
    );
}
