//! The registry of AMAS error codes: every stable `AMAS-<AREA>-NNNN` code that AMAS reports
//! (in API bodies, CLI messages, journaled failures and audit records) is a constant here, with
//! the one-line summary its page `docs/errors/<code>.md` is titled with. Codes are public API:
//! never renumbered, never reused. A test checks that every code has its page and every page a
//! code.

/// One registered code and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: &'static str,
    pub summary: &'static str,
}

macro_rules! registry {
    ($($name:ident = $code:literal: $summary:literal;)*) => {
        $(
            #[doc = $summary]
            pub const $name: &str = $code;
        )*

        /// Every registered code, in code order.
        pub const ALL: &[CodeInfo] = &[$(CodeInfo { code: $code, summary: $summary }),*];
    };
}

registry! {
    API_INVALID_REQUEST = "AMAS-API-0001": "Invalid request";
    API_NOT_FOUND = "AMAS-API-0002": "Not found";
    API_METHOD_NOT_ALLOWED = "AMAS-API-0003": "Method not allowed";
    API_BODY_TOO_LARGE = "AMAS-API-0004": "Body too large";
    API_UNSUPPORTED_MEDIA_TYPE = "AMAS-API-0005": "Unsupported media type";
    API_REQUEST_TIMEOUT = "AMAS-API-0006": "Request timed out";
    API_RATE_LIMITED = "AMAS-API-0007": "Rate limit exceeded";
    API_JSON_TOO_DEEP = "AMAS-API-0008": "JSON nested too deeply";
    API_TOO_MANY_CONNECTIONS = "AMAS-API-0009": "Too many connections from one client";
    API_TOO_MANY_STREAMS = "AMAS-API-0010": "Too many event streams for the tenant";
    API_BAD_LAST_EVENT_ID = "AMAS-API-0011": "Invalid Last-Event-ID";
    API_INTERNAL = "AMAS-API-0500": "Internal error";
    APPR_NOT_FOUND = "AMAS-APPR-0001": "Approval not found";
    APPR_ALREADY_SETTLED = "AMAS-APPR-0002": "Approval already settled";
    APPR_ALREADY_VOTED = "AMAS-APPR-0003": "Already voted";
    APPR_UNAVAILABLE = "AMAS-APPR-0004": "Approval temporarily unavailable";
    APPR_VOTE_TOO_LATE = "AMAS-APPR-0005": "Vote after the approval's deadline";
    AUDIT_CLOSED = "AMAS-AUDIT-0001": "Audit writer shut down";
    AUDIT_CHECKPOINT_UNSIGNED = "AMAS-AUDIT-0002": "Audit checkpoint not signed";
    AUDIT_PUBLIC_KEY_MISSING = "AMAS-AUDIT-0003": "Audit public key missing";
    AUDIT_KEY_INVALID = "AMAS-AUDIT-0004": "Invalid audit key";
    AUDIT_WITNESS = "AMAS-AUDIT-0005": "Audit witness unavailable";
    AUDIT_BROKEN = "AMAS-AUDIT-0006": "Audit log failed verification";
    AUDIT_PACK_INVALID = "AMAS-AUDIT-0007": "Evidence pack failed verification";
    AUDIT_PACK_UNWRITABLE = "AMAS-AUDIT-0008": "Evidence pack cannot be written";
    AUTH_NO_TOKEN = "AMAS-AUTH-0001": "No bearer token";
    AUTH_MALFORMED_TOKEN = "AMAS-AUTH-0002": "Malformed token";
    AUTH_ALGORITHM_REJECTED = "AMAS-AUTH-0003": "Signing algorithm not accepted";
    AUTH_UNTRUSTED_ISSUER = "AMAS-AUTH-0004": "Untrusted issuer";
    AUTH_UNKNOWN_KEY = "AMAS-AUTH-0005": "Unknown signing key";
    AUTH_BAD_SIGNATURE = "AMAS-AUTH-0006": "Bad signature";
    AUTH_EXPIRED = "AMAS-AUTH-0007": "Token expired";
    AUTH_NOT_YET_VALID = "AMAS-AUTH-0008": "Token not valid yet";
    AUTH_WRONG_AUDIENCE = "AMAS-AUTH-0009": "Wrong audience";
    AUTH_ISSUER_MISMATCH = "AMAS-AUTH-0010": "Issuer mismatch";
    AUTH_KEY_STORE = "AMAS-AUTH-0011": "Token key store failure";
    AUTH_TOO_OLD = "AMAS-AUTH-0012": "Token too old";
    AUTH_NO_TENANT = "AMAS-AUTH-0013": "Token has no tenant";
    AUTH_TOO_LARGE = "AMAS-AUTH-0014": "Token too large";
    AUTH_KEYS_UNAVAILABLE = "AMAS-AUTH-0015": "Issuer keys unavailable";
    AUTH_KEYS_EXPIRED = "AMAS-AUTH-0016": "Issuer keys expired";
    CFG_PARSE = "AMAS-CFG-0001": "Configuration file unreadable or not valid YAML";
    CFG_UNKNOWN_KEY = "AMAS-CFG-0002": "Unknown configuration key";
    CFG_INVALID_VALUE = "AMAS-CFG-0003": "Invalid configuration value";
    CFG_UNKNOWN_REFERENCE = "AMAS-CFG-0004": "Unknown reference";
    CFG_CYCLE = "AMAS-CFG-0005": "Workflow dependency cycle";
    CFG_SCHEMA = "AMAS-CFG-0006": "Contract schema does not compile";
    DP_CONFIG = "AMAS-DP-0001": "Data-protection configuration invalid";
    DP_TOO_DEEP = "AMAS-DP-0002": "JSON document nests too deeply";
    DP_TOO_LARGE = "AMAS-DP-0003": "Input too large for data protection";
    DP_NOT_UTF8 = "AMAS-DP-0004": "Input is not valid UTF-8";
    DP_NOT_JSON = "AMAS-DP-0005": "Input is not valid JSON";
    GOV_POLICY_DENIED = "AMAS-GOV-0001": "Denied by policy";
    GOV_NOT_ALLOWLISTED = "AMAS-GOV-0002": "Tool not in the agent's allowlist";
    GOV_INVALID_PARAMS = "AMAS-GOV-0003": "Invalid tool parameters";
    GOV_SANDBOX = "AMAS-GOV-0004": "Sandbox bound";
    GOV_QUOTA = "AMAS-GOV-0005": "Quota reached";
    GOV_APPROVAL_REQUIRED = "AMAS-GOV-0006": "Approval required";
    GOV_UNKNOWN_TOOL = "AMAS-GOV-0007": "Unknown tool";
    GOV_SELF_APPROVAL = "AMAS-GOV-0008": "You cannot approve your own request";
    GOV_APPROVAL_DENIED = "AMAS-GOV-0009": "Approval denied";
    GOV_APPROVAL_EXPIRED = "AMAS-GOV-0010": "Approval expired";
    GOV_NOT_AN_APPROVER = "AMAS-GOV-0011": "Not an approver";
    GOV_OBLIGATION_UNMET = "AMAS-GOV-0012": "Policy obligation cannot be carried out";
    POL_UNREADABLE = "AMAS-POL-0001": "Policy directory or file unreadable";
    POL_COMPILE = "AMAS-POL-0002": "Policy does not compile";
    POL_INCOMPLETE = "AMAS-POL-0003": "Incomplete policy bundle";
    POL_BAD_TEST_FILE = "AMAS-POL-0004": "Bad policy test file";
    POL_EVAL_FAILED = "AMAS-POL-0005": "Action denied: policy error (fail closed)";
    PROV_UNAVAILABLE = "AMAS-PROV-0001": "Model provider unavailable";
    PROV_RATE_LIMITED = "AMAS-PROV-0002": "Model provider rate limiting";
    PROV_TIMEOUT = "AMAS-PROV-0003": "Model provider timed out";
    PROV_BAD_RESPONSE = "AMAS-PROV-0004": "Model provider answered badly";
    PROV_MODEL_MISSING = "AMAS-PROV-0005": "Local model not installed";
    PROV_CIRCUIT_OPEN = "AMAS-PROV-0006": "Provider circuit open";
    PROV_CONFIG = "AMAS-PROV-0007": "Provider misconfigured";
    PROV_INFERENCE = "AMAS-PROV-0008": "Local inference failed";
    PROV_ALL_FAILED = "AMAS-PROV-0009": "Every provider failed";
    SAFE_SUBMISSION_BLOCKED = "AMAS-SAFE-0001": "Submission refused by content safety";
    SAFE_OUTPUT_BLOCKED = "AMAS-SAFE-0002": "Model output refused by content safety";
    SAFE_RESULT_BLOCKED = "AMAS-SAFE-0003": "Tool result refused by content safety";
    SAFE_INJECTION_BLOCKED = "AMAS-SAFE-0004": "Tool result refused as a prompt injection";
    STEP_INPUT_CONTRACT = "AMAS-STEP-0001": "Step input broke the input contract";
    STEP_OUTPUT_CONTRACT = "AMAS-STEP-0002": "Step output broke the output contract";
    STEP_TOKEN_BUDGET = "AMAS-STEP-0003": "Token budget exceeded";
    STEP_WORKFLOW_GONE = "AMAS-STEP-0004": "Workflow or agent no longer configured";
    STEP_UPSTREAM_FAILED = "AMAS-STEP-0005": "Upstream step failed";
    STEP_TIMEOUT = "AMAS-STEP-0006": "Step timed out";
    STEP_UNCERTAIN_SIDE_EFFECT = "AMAS-STEP-0007": "Tool side effect uncertain after a restart";
    STEP_MODEL_CALL_DENIED = "AMAS-STEP-0008": "No provider allowed for this data";
    STORE_CONFLICT = "AMAS-STORE-0001": "Journal conflict";
    STORE_INVALID_APPEND = "AMAS-STORE-0002": "Invalid journal append";
    STORE_BACKEND = "AMAS-STORE-0003": "Storage backend error";
    STORE_CORRUPT = "AMAS-STORE-0004": "Corrupt journal data";
    STORE_MIGRATION = "AMAS-STORE-0005": "Store migration failed";
    STORE_CONFIG = "AMAS-STORE-0006": "Invalid store configuration";
    STORE_NOT_PURGEABLE = "AMAS-STORE-0007": "Task cannot be purged";
    STORE_CLOSED = "AMAS-STORE-0008": "Store writer is shut down";
    STORE_NOT_PRIVATE = "AMAS-STORE-0009": "Data directory cannot be made private";
    STORE_TASK_ENDED = "AMAS-STORE-0010": "Task has ended: its journal is closed";
    STORE_SCHEMA_NEWER = "AMAS-STORE-0011": "Database schema is newer than this binary";
    STORE_SCHEMA_BEHIND = "AMAS-STORE-0012": "Database schema is behind: migrations pending";
    STORE_TARGET_NOT_EMPTY = "AMAS-STORE-0013": "Copy target is not empty";
    STORE_LEASE_LOST = "AMAS-STORE-0014": "Task lease lost: the append's fencing epoch is stale";
    TASK_UNKNOWN_TYPE = "AMAS-TASK-0001": "Unknown task type";
    TASK_CANCELLED = "AMAS-TASK-0002": "Task cancelled";
    TASK_QUEUE_FULL = "AMAS-TASK-0003": "Task queue full";
    TASK_NOT_FOUND = "AMAS-TASK-0004": "Task not found";
    TASK_SHUTTING_DOWN = "AMAS-TASK-0005": "Shutting down";
    TASK_AGENT_SETUP = "AMAS-TASK-0006": "Agent set-up failed";
    TASK_TENANT_QUEUE_FULL = "AMAS-TASK-0007": "Tenant's task queue full";
    TASK_CANCEL_PENDING = "AMAS-TASK-0008": "Cancel recorded, not applied yet";
    TOOL_INVALID_PARAMS = "AMAS-TOOL-0001": "Invalid tool parameters";
    TOOL_REFUSED = "AMAS-TOOL-0002": "Refused by the tool sandbox";
    TOOL_TIMEOUT = "AMAS-TOOL-0003": "Tool call timed out";
    TOOL_TOO_LARGE = "AMAS-TOOL-0004": "Tool input or output too large";
    TOOL_FAILED = "AMAS-TOOL-0005": "Tool failed";
    TOOL_NOT_FOUND = "AMAS-TOOL-0006": "Unknown tool";
    TOOL_DISABLED = "AMAS-TOOL-0007": "Tool disabled";
    TOOL_INVALID_OUTPUT = "AMAS-TOOL-0008": "Tool result breaks its output schema";
    TOOL_SQL_DENIED = "AMAS-TOOL-0009": "SQL statement refused by the database";
    TOOL_SQL_TIME_BUDGET = "AMAS-TOOL-0010": "SQL statement stopped at its time budget";
    TOOL_SQL_LIMIT = "AMAS-TOOL-0011": "SQL statement stopped at a size or memory limit";
    TOOL_SQL_ROLE = "AMAS-TOOL-0012": "Database role not least-privilege";
}

/// The registered code `code` and its summary, if registered.
#[must_use]
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|info| info.code == code)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;

    /// Used only by the store's conformance fixtures; deliberately has no page.
    const TEST_ONLY: &str = "AMAS-TEST-0001";

    fn pages() -> BTreeSet<String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter_map(|name| name.strip_suffix(".md").map(str::to_owned))
            .collect()
    }

    #[test]
    fn every_code_has_a_page_and_every_page_a_code() {
        let pages = pages();
        let codes: BTreeSet<String> = ALL.iter().map(|i| i.code.to_owned()).collect();
        let missing: Vec<_> = codes.difference(&pages).collect();
        assert!(
            missing.is_empty(),
            "codes without docs/errors/<code>.md: {missing:?}"
        );
        let orphans: Vec<_> = pages.difference(&codes).collect();
        assert!(
            orphans.is_empty(),
            "pages in docs/errors without a registered code: {orphans:?}"
        );
        assert!(!codes.contains(TEST_ONLY) && !pages.contains(TEST_ONLY));
    }

    #[test]
    fn codes_are_unique_well_formed_and_sorted() {
        let mut seen = BTreeSet::new();
        for info in ALL {
            assert!(seen.insert(info.code), "{} registered twice", info.code);
            let parts: Vec<&str> = info.code.split('-').collect();
            assert_eq!(parts.len(), 3, "{}", info.code);
            assert_eq!(parts[0], "AMAS", "{}", info.code);
            assert!(
                parts[1].chars().all(|c| c.is_ascii_uppercase()),
                "{}",
                info.code
            );
            assert!(
                parts[2].len() == 4 && parts[2].chars().all(|c| c.is_ascii_digit()),
                "{}",
                info.code
            );
            assert!(!info.summary.is_empty(), "{} has no summary", info.code);
        }
        let codes: Vec<_> = ALL.iter().map(|i| i.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(codes, sorted, "keep the registry in code order");
    }

    #[test]
    fn each_summary_is_its_page_title() {
        for info in ALL {
            let page = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/errors")
                .join(format!("{}.md", info.code));
            let text = std::fs::read_to_string(&page).unwrap();
            let title = text.lines().next().unwrap_or_default();
            assert_eq!(
                title,
                format!("# {}: {}", info.code, info.summary),
                "{}",
                page.display()
            );
        }
        assert_eq!(
            lookup("AMAS-GOV-0005").map(|i| i.summary),
            Some("Quota reached")
        );
        assert_eq!(lookup(TEST_ONLY), None);
    }
}
