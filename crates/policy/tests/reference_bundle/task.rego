# Task submission: which roles may submit which task types.
package amas.task

import data.amas.lib

decision := lib.decision(allow, require_approval, deny, needs, grant)

default allow := false

allow if {
	count(deny) == 0
	count(grant) > 0
}

default require_approval := false

needs := set()

# Task types that can touch security-sensitive systems: admins only.
admin_only_types := {"security_audit", "system_maintenance"}

task_type := input.action.name

grant contains {"rule": "task.admin_submit", "reason": sprintf("admin may submit %s", [task_type])} if {
	lib.has_role(input.principal, "admin")
}

grant contains {"rule": "task.submitter_submit", "reason": sprintf("submitter may submit %s", [task_type])} if {
	lib.has_role(input.principal, "submitter")
	not task_type in admin_only_types
}

deny contains {"rule": "task.admin_only_type", "reason": sprintf("only an admin may submit %s tasks", [task_type])} if {
	task_type in admin_only_types
	not lib.has_role(input.principal, "admin")
}

deny contains {"rule": "task.no_tenant", "reason": "the principal has no tenant"} if {
	object.get(input, ["principal", "tenant"], "") == ""
}
