# API operations: the role model of the HTTP API (docs/policies.md lists it).
package amas.api

import data.amas.lib

decision := lib.decision(allow, require_approval, deny, needs, grant)

default allow := false

allow if {
	count(deny) == 0
	count(grant) > 0
}

default require_approval := false

needs := set()

read_ops := {"task.read", "task.list", "task.events"}

# Which roles may perform each operation. admin may do everything.
op_roles := {
	"task.read": {"viewer", "submitter", "auditor", "admin"},
	"task.list": {"viewer", "submitter", "auditor", "admin"},
	"task.events": {"viewer", "submitter", "auditor", "admin"},
	"task.submit": {"submitter", "admin"},
	"task.cancel": {"submitter", "admin"},
	"approval.list": {"approver", "admin"},
	"approval.decide": {"approver", "admin"},
	"audit.read": {"auditor", "admin"},
	"metrics.read": {"auditor", "admin"},
	"config.read": {"viewer", "submitter", "approver", "auditor", "admin"},
	"admin": {"admin"},
}

# Operations on oneself that any authenticated principal of a tenant may perform, whatever its
# roles (a principal without roles can still see what AMAS made of its token).
self_ops := {"me"}

op := input.action.name

is_admin if lib.has_role(input.principal, "admin")

grant contains {"rule": sprintf("api.role.%s", [role]), "reason": sprintf("role %s may perform %s", [role, op])} if {
	some role in input.principal.roles
	role in op_roles[op]
}

grant contains {"rule": "api.self", "reason": sprintf("anyone may perform %s", [op])} if {
	op in self_ops
}

deny contains {"rule": "api.unknown_operation", "reason": sprintf("unknown API operation %v", [op])} if {
	not op_roles[op]
	not op in self_ops
}

deny contains {"rule": "api.no_tenant", "reason": "the principal has no tenant"} if {
	object.get(input, ["principal", "tenant"], "") == ""
}

# Defence in depth behind the API's own tenant filter: never act on another tenant's object.
deny contains {"rule": "api.cross_tenant", "reason": "the resource belongs to another tenant"} if {
	input.resource.tenant != input.principal.tenant
}

# A submitter cancels only their own tasks; the API passes the task's owner as resource.owner.
deny contains {"rule": "api.cancel_not_owner", "reason": "a submitter may cancel only their own tasks"} if {
	op == "task.cancel"
	not is_admin
	not is_owner
}

is_owner if {
	object.get(input, ["resource", "owner"], "") == input.principal.sub
	object.get(input, ["resource", "owner_iss"], "") == object.get(input, ["principal", "iss"], "")
}
