# Shared helpers: every decision point builds its document with lib.decision so the shape
# ({allow, require_approval, reasons, rules}) is the same everywhere (tool.rego, the hottest
# point, builds the same document from its own rules: function calls cost evaluation time).
#
# Convention in every package:
#   deny      contains {"rule": id, "reason": text}  hard denies; any one of them wins
#   needs     contains {"rule": id, "reason": text}  conditions that an approval can satisfy
#   grant     contains {"rule": id, "reason": text}  why the action may happen at all
#   approved  true when the approvals in the input satisfy every entry of `needs`
package amas.lib

# The document returned to AMAS. `rules` lists the ids of every rule that matched, for
# `amas policy eval` and the audit log.
decision(allow, require_approval, deny, needs, grant) := {
	"allow": allow,
	"require_approval": require_approval,
	"reasons": reasons(allow, require_approval, deny, needs, grant),
	"rules": sort([r.rule | some r in ((deny | needs) | grant)]),
}

# The same document with `obligations`: what AMAS must do for an allow to hold (e.g.
# "redact": send only the redacted data). Obligations are dropped on a deny.
decision_with_obligations(allow, require_approval, deny, needs, grant, obligations) := {
	"allow": allow,
	"require_approval": require_approval,
	"reasons": reasons(allow, require_approval, deny, needs, grant),
	"rules": sort([r.rule | some r in ((deny | needs) | grant)]),
	"obligations": sort([o | some o in obligations; allow]),
}

reasons(allow, require_approval, deny, needs, grant) := texts(deny) if {
	count(deny) > 0
} else := texts(needs) if {
	require_approval
} else := texts(grant) if {
	allow
} else := ["no rule allows this action (default deny)"]

texts(entries) := sort([e.reason | some e in entries])

has_role(principal, role) if role in principal.roles

# The roles whose approvals count: `approvals.approver_roles` from AMAS's configuration, passed
# in as `input.approver_roles`; without it, the default roles.
approver_roles := object.get(input, "approver_roles", ["approver", "admin"])

# Approvals that count: an explicit "approve" by a named approver holding an approving role,
# who is not the requester. A person is a subject at an issuer (`iss`): the same `sub` from
# another issuer is someone else, and one person's approvals count once.
valid_approvers(approvals, principal) := {[object.get(a, "iss", ""), a.approver] |
	some a in approvals
	a.decision == "approve"
	a.approver != ""
	[object.get(a, "iss", ""), a.approver] != [object.get(principal, "iss", ""), principal.sub]
	some role in a.roles
	role in approver_roles
}
