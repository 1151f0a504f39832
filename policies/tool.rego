# Tool calls: which agent may call which tool, and when a human must approve first.
package amas.tool

import data.amas.lib

# The document lib.decision_with_obligations builds, built here as one else-chain: this is the
# hottest decision point, and the bytecode pays for every rule body it enters and every
# reference to a rule (most for the many-bodied deny, needs and grant). Each branch evaluates
# what lib.decision_with_obligations evaluates in that case (`approval_satisfied`, and with it
# `approved`, only when nothing denies and something grants), so the decisions are the same,
# errors included (`crates/policy/tests/reference_bundle`, checked by the differential test).
decision := {
	"allow": false,
	"require_approval": false,
	"reasons": sort([e.reason | some e in denies]),
	"rules": sort([r.rule | some r in ((denies | needs) | grant)]),
	"obligations": [],
} if {
	# Any deny wins.
	denies := deny
	count(denies) > 0
} else := {
	"allow": false,
	"require_approval": false,
	"reasons": ["no rule allows this action (default deny)"],
	"rules": sort([r.rule | some r in ((deny | needs) | grants)]),
	"obligations": [],
} if {
	grants := grant
	count(grants) == 0
} else := {
	"allow": true,
	"require_approval": false,
	"reasons": sort([e.reason | some e in grants]),
	"rules": sort([r.rule | some r in ((deny | needs) | grants)]),
	"obligations": sort([o | some o in obligations]),
} if {
	approval_satisfied
	grants := grant
} else := {
	"allow": false,
	"require_approval": true,
	"reasons": sort([e.reason | some e in needs]),
	"rules": sort([r.rule | some r in ((deny | needs) | grant)]),
	"obligations": [],
}

approval_satisfied if count(needs) == 0

approval_satisfied if approved

# Tools each configured agent may use beyond the generic grant below. The agent's
# `allowed_tools` in config/agents.yaml is enforced separately: both must allow.
agent_tools := {
	"code_reviewer": {"code_analyzer", "file_read"},
	"security_auditor": {"code_analyzer", "file_read", "vulnerability_scanner"},
	"research": {"http_fetch", "calculator"},
	"web_research": {"http_fetch"},
	"analysis": {"calculator", "sql_query", "file_read"},
	"synthesis": {"calculator", "file_write"},
}

# ---- grants -------------------------------------------------------------------------------

grant contains {"rule": "tool.agent_grant", "reason": sprintf("agent %s may use %s", [input.agent.id, input.tool.name])} if {
	input.tool.name in agent_tools[input.agent.id]
}

# Pure or read-only low-risk tools are harmless enough for any agent.
grant contains {"rule": "tool.low_risk_read_only", "reason": sprintf("%s is a low-risk tool without write or external effects", [input.tool.name])} if {
	input.tool.risk == "low"
	input.tool.side_effects in {"none", "read"}
}

grant contains {"rule": "tool.admin_grant", "reason": sprintf("admin %s may use %s", [input.principal.sub, input.tool.name])} if {
	"admin" in input.principal.roles
}

# ---- hard denies --------------------------------------------------------------------------

deny contains {"rule": "tool.reviewer_no_vulnerability_scanner", "reason": "code_reviewer may not use vulnerability_scanner (security audits belong to security_auditor)"} if {
	input.agent.id == "code_reviewer"
	input.tool.name == "vulnerability_scanner"
}

deny contains {"rule": "tool.system_executor_admin_only", "reason": "system_executor may only be requested by an admin"} if {
	input.tool.name == "system_executor"
	not "admin" in input.principal.roles
}

# Restricted data never leaves through a tool with external effects; when DLP redacts the
# parameters, what counts is their level after redaction.
deny contains {"rule": "tool.external_restricted_data", "reason": sprintf("%s has external side effects and the data is restricted", [input.tool.name])} if {
	input.tool.side_effects == "external"
	outbound_classification == "restricted"
}

# ---- data-loss prevention -----------------------------------------------------------------
# AMAS scans every call's parameters and supplies the facts: input.dlp.types (finding types),
# input.dlp.actions (the action config/dataprotect.yaml sets for each type found: block,
# redact or allow), input.dlp.error (true when the parameters could not be scanned),
# input.data.classification/tags and, when a type found is set to redact,
# input.data.redacted (the level after redacting those types).

dlp_types := object.get(input, ["dlp", "types"], [])

dlp_actions := object.get(input, ["dlp", "actions"], {})

dlp_blocked := {t | some t in dlp_types; object.get(dlp_actions, t, "block") == "block"}

dlp_redacted := {t | some t in dlp_types; object.get(dlp_actions, t, "block") == "redact"}

outbound_classification := object.get(input, ["data", "redacted", "classification"], "restricted") if {
	count(dlp_redacted) > 0
} else := object.get(input, ["data", "classification"], "internal")

deny contains {"rule": "tool.dlp_blocked", "reason": sprintf("%s reaches outside AMAS and its parameters carry %s data", [input.tool.name, concat(", ", sort(dlp_blocked))])} if {
	input.tool.side_effects == "external"
	count(dlp_blocked) > 0
}

deny contains {"rule": "tool.dlp_unscannable", "reason": sprintf("%s reaches outside AMAS and its parameters could not be scanned", [input.tool.name])} if {
	input.tool.side_effects == "external"
	object.get(input, ["dlp", "error"], false) == true
}

obligations contains "redact" if {
	input.tool.side_effects == "external"
	count(dlp_redacted) > 0
}

# Approval entries that make the request suspicious: a hard deny, never something to wait on.
deny contains {"rule": "tool.bad_approval", "reason": "an approval without an approver was supplied"} if {
	some a in approvals
	a.approver == ""
}

deny contains {"rule": "tool.bad_approval", "reason": sprintf("approval denied by %s", [a.approver])} if {
	some a in approvals
	a.decision == "deny"
	a.approver != ""
}

deny contains {"rule": "tool.unknown_risk", "reason": sprintf("tool %s has no known risk level", [input.tool.name])} if {
	not input.tool.risk in {"low", "medium", "high", "critical"}
}

# ---- approvals ----------------------------------------------------------------------------

needs contains {"rule": "tool.system_executor_approval", "reason": "system_executor requires an approval"} if {
	input.tool.name == "system_executor"
}

needs contains {"rule": "tool.marked_requires_approval", "reason": sprintf("%s is marked as requiring approval", [input.tool.name])} if {
	input.tool.requires_approval == true
}

needs contains {"rule": "tool.critical_risk_approval", "reason": sprintf("%s is a critical-risk tool and requires approval", [input.tool.name])} if {
	input.tool.risk == "critical"
}

needs contains {"rule": "tool.production_high_risk_dual_approval", "reason": sprintf("%s is high risk in production and requires two distinct approvers", [input.tool.name])} if {
	input.environment == "production"
	input.tool.risk in {"high", "critical"}
}

approvals := object.get(input, "approvals", [])

approvers := lib.valid_approvers(approvals, input.principal)

required_approvers := 2 if {
	input.environment == "production"
	input.tool.risk in {"high", "critical"}
} else := 1

approved if count(approvers) >= required_approvers
