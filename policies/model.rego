# Model calls: which data may go to which provider, given the provider's trust level.
package amas.model

import data.amas.lib

decision := lib.decision(allow, require_approval, deny, needs, grant)

default allow := false

allow if {
	count(deny) == 0
	count(grant) > 0
}

# Model calls never wait for a human: they are allowed or not.
default require_approval := false

needs := set()

levels := {"public", "internal", "confidential", "restricted"}

# A call without a data document carries task input of unknown sensitivity: internal.
classification := object.get(input, ["data", "classification"], "internal")

grant contains {"rule": "model.trusted_provider", "reason": sprintf("provider %s is trusted for %s data", [input.provider.name, classification])} if {
	classification in input.provider.trusted_for
}

deny contains {"rule": "model.unknown_classification", "reason": sprintf("unknown data classification %v", [classification])} if {
	not classification in levels
}

deny contains {"rule": "model.untrusted_provider", "reason": sprintf("provider %s is not trusted for %s data", [input.provider.name, classification])} if {
	classification in levels
	not classification in object.get(input, ["provider", "trusted_for"], [])
}

deny contains {"rule": "model.no_agent", "reason": "a model call must come from an agent"} if {
	not input.agent.id
}
