//! Journals written while step, call, approval, agent and provider ids were bare strings must
//! still load, and events must still serialize to exactly the bytes they were written as (the
//! SQLite and PostgreSQL journals, API bodies and audit chains all hold that JSON).

use amas_types::{
    AgentId, ApprovalId, ApprovalStatus, CallId, JournalEvent, JournalRecord, ProviderId, StepId,
    StepStatus, TaskState, TaskStatus, ToolOutcome,
};

/// A journal in the format AMAS wrote before the id newtypes: every event that carries an id.
const JOURNAL: &str = include_str!("fixtures/journal-string-ids.jsonl");

fn records() -> serde_json::Result<Vec<JournalRecord>> {
    JOURNAL.lines().map(serde_json::from_str).collect()
}

#[test]
fn every_event_serializes_to_the_bytes_it_was_journaled_as() {
    for line in JOURNAL.lines() {
        let record: JournalRecord = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
    }
}

#[test]
fn a_journal_written_with_string_ids_folds_into_typed_ids() {
    let records = records().unwrap();
    let state = TaskState::fold(&records).unwrap();
    assert_eq!(state.status, TaskStatus::Failed);
    assert_eq!(state.last_seq, 18);

    let research = &state.steps["research"];
    assert_eq!(research.step, "research");
    assert_eq!(research.agent, AgentId::from("researcher"));
    assert_eq!(research.status, StepStatus::Succeeded);
    assert_eq!(research.attempts, 1);
    assert_eq!(research.usage.input_tokens, 10);
    assert!(matches!(
        research.tools.get("call_1"),
        Some(ToolOutcome::Completed(_))
    ));
    assert!(matches!(
        research.tools.get(&CallId::from("call_2")),
        Some(ToolOutcome::Failed(e)) if e.code == "AMAS-GOV-0002"
    ));
    assert_eq!(
        research.violations[&2],
        vec!["/summary: missing".to_owned()]
    );
    assert_eq!(
        research.responses[&1].tool_calls[0].id,
        CallId::from("call_1")
    );
    assert_eq!(state.steps["review"].status, StepStatus::Failed);

    let approval_id = ApprovalId::from("01936f5e-0000-7000-8000-0000000000a1");
    let approval = &state.approvals[&approval_id];
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.votes.len(), 1);
    assert_eq!(approval.agent, "researcher");
    let found = state
        .approval_for(&StepId::from("research"), &CallId::from("call_1"))
        .unwrap();
    assert_eq!(found.id, approval_id);
    assert!(
        state
            .approval_for(&StepId::from("review"), &CallId::from("call_1"))
            .is_none()
    );

    let node = &state.lineage["tool:research:call_1"];
    assert_eq!(node.step.as_ref().unwrap(), "research");
    assert_eq!(node.call_id.as_ref().unwrap(), "call_1");

    let JournalEvent::ModelResponded { provider, .. } = &records[4].event else {
        panic!("record 5 is the model answer");
    };
    assert_eq!(*provider, ProviderId::from("openai"));
}

/// The task view the API serves keys steps and approvals by the same strings as before.
#[test]
fn the_folded_state_serializes_ids_as_plain_strings() {
    let state = TaskState::fold(&records().unwrap()).unwrap();
    let doc = serde_json::to_value(&state).unwrap();
    assert_eq!(doc["steps"]["research"]["step"], "research");
    assert_eq!(doc["steps"]["research"]["agent"], "researcher");
    let approval = &doc["approvals"]["01936f5e-0000-7000-8000-0000000000a1"];
    assert_eq!(approval["id"], "01936f5e-0000-7000-8000-0000000000a1");
    assert_eq!(approval["call_id"], "call_1");
    assert_eq!(approval["step"], "research");
}

/// In JSON an id is a string, and only a string.
#[test]
fn ids_deserialize_only_from_strings() {
    assert_eq!(
        serde_json::from_str::<StepId>("\"research\"").unwrap(),
        "research"
    );
    assert!(serde_json::from_str::<CallId>("1").is_err());
    assert!(serde_json::from_str::<ApprovalId>("null").is_err());
}
