# Model calls: which data may go to which provider, given the provider's trust level.
#
# AMAS supplies the prompt's classification (`data.classification`, `data.tags`) and, when the
# prompt can be redacted, the classification of the redacted prompt (`data.redacted`). A
# provider trusted for the prompt's level gets it as it is; a provider trusted only for the
# redacted level gets it under the obligation `redact` (AMAS sends the redacted messages);
# any other provider is refused.
package amas.model

import data.amas.lib

decision := lib.decision_with_obligations(allow, require_approval, deny, needs, grant, obligations)

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

# The level of the prompt once redacted; absent when AMAS cannot redact it.
redacted_classification := object.get(input, ["data", "redacted", "classification"], "")

trusted_for := object.get(input, ["provider", "trusted_for"], [])

trusted_as_is if classification in trusted_for

trusted_after_redaction if {
	not trusted_as_is
	redacted_classification in levels
	redacted_classification in trusted_for
}

grant contains {"rule": "model.trusted_provider", "reason": sprintf("provider %s is trusted for %s data", [input.provider.name, classification])} if {
	trusted_as_is
}

grant contains {"rule": "model.redacted_for_provider", "reason": sprintf("provider %s is not trusted for %s data; it gets the prompt redacted (%s)", [input.provider.name, classification, redacted_classification])} if {
	classification in levels
	trusted_after_redaction
}

obligations contains "redact" if {
	classification in levels
	trusted_after_redaction
}

deny contains {"rule": "model.unknown_classification", "reason": sprintf("unknown data classification %v", [classification])} if {
	not classification in levels
}

deny contains {"rule": "model.untrusted_provider", "reason": sprintf("provider %s is not trusted for %s data", [input.provider.name, classification])} if {
	classification in levels
	not trusted_as_is
	not trusted_after_redaction
}

deny contains {"rule": "model.no_agent", "reason": "a model call must come from an agent"} if {
	not input.agent.id
}
