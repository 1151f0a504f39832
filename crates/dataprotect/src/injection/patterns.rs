//! The phrase patterns of the injection screen: instructions aimed at the agent rather than
//! at a human reader. One `RegexSet` pass over the text decides whether anything matched at
//! all (clean text costs that one pass); only the patterns that did are run again for
//! offsets. Each pattern carries a weight: a strong one (an override of "all previous
//! instructions") reaches the threshold alone, a weak one ("developer mode", "system prompt")
//! only together with another signal.

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::Signal;

/// Nouns naming what an injected override wants dropped.
const ORDERS: &str = r"(?:instructions?|prompts?|directions|directives?|rules|guidelines|commands|context|tasks?|assignments?|messages|constraints|restrictions|programming|guidance|conversation|orders|polic(?:y|ies)|safeguards|filters|training|anweisungen|aufgaben?|auftr(?:\xC3\xA4|ae)ge|angaben|instrucciones|consignes)";
/// What marks "the instructions you already have" rather than any instructions.
const EARLIER: &str = r"(?:previous|prior|above|preceding|earlier|former|original|initial|old|all|any|every|your|system|developer|my|these|those|vorherigen?|bisherigen?|alle[ns]?|anteriores|todas?|pr(?:\xC3\xA9|e)c(?:\xC3\xA9|e)dentes)";
/// Up to `n` words on the same line between two parts of a phrase.
fn gap(n: u8) -> String {
    format!(r"[^\w\n]+(?:[\w']+[^\w\n]+){{0,{n}}}?")
}

/// Addressees that can only be the agent.
const AI: &str = r"(?:ai|a\.i\.|artificial\s+intelligence|llms?|large\s+language\s+models?|language\s+models?|ai\s+models?|ai\s+assistants?|ai\s+agents?|chat\s?bots?|chatgpt|gpt(?:-?\d[\w.]*)?|claude|gemini|copilot|virtual\s+assistant)";

/// `(signal, weight, pattern)`; `\b` means an ASCII word boundary (see [`compile`]).
fn table() -> Vec<(Signal, f32, String)> {
    use Signal::*;
    let g2 = gap(2);
    let g4 = gap(4);
    let verbs = r"(?:ignore|ignoring|disregard|forget|overlook|bypass|override|neglect|discard|abandon|vergiss|vergessen|ignoriere|ignorieren|olvida|olvide|ignora|oublie|ignorez)";
    vec![
        // "ignore all previous instructions", "forget your rules", "disregard the system prompt"
        (
            InstructionOverride,
            0.85,
            format!(r"\b{verbs}\b{g2}{EARLIER}\b{g2}{ORDERS}\b"),
        ),
        (
            InstructionOverride,
            0.4,
            format!(r"\b{verbs}\b{g4}{ORDERS}\b"),
        ),
        (
            InstructionOverride,
            0.75,
            r"\b(?:forget|ignore|disregard|vergiss|vergessen\s+sie)\s+(?:about\s+)?(?:everything|all\s+(?:of\s+)?(?:that|this|the\s+above)|alles)\b".to_owned(),
        ),
        (
            InstructionOverride,
            0.75,
            format!(
                r"\b{verbs}\b[^\w\n]+(?:(?:what|everything|anything|all)\s+(?:i|you|we)\s+(?:said|wrote|told\s+you|have\s+said)|what'?s\s+before|(?:all\s+)?(?:the\s+|of\s+the\s+)?above|(?:everything|all|todo)\s+(?:before|above|so\s+far|que\s+dije)|die\s+obigen|das\s+obige|the\s+user(?:'s)?(?:\s+(?:request|question|instructions|task))?)\b"
            ),
        ),
        (
            InstructionOverride,
            0.8,
            format!(
                r"\b(?:do\s+not|don'?t|never|stop)\s+(?:follow|following|obey|obeying|listen\s+to|comply\s+with|adhere\s+to)\b{g2}(?:previous|prior|above|original|system|your|the)\b{g2}{ORDERS}\b"
            ),
        ),
        (
            InstructionOverride,
            0.65,
            r"\byour\s+(?:new|real|actual|true|primary|only)\s+(?:task|goal|objective|purpose|job|instructions?|mission|assignment)\s+(?:is|are|now|will\s+be)\b".to_owned(),
        ),
        (
            InstructionOverride,
            0.6,
            r"\b(?:new|updated|revised|additional|real)\s+(?:instructions?|system\s+prompt|directives?|orders)\s*(?::|-|are\b|follow\b)".to_owned(),
        ),
        (
            InstructionOverride,
            0.6,
            r"\b(?:now|instead)\b[^.\n]{0,40}\bnew\s+(?:task|assignment|instructions?)\b".to_owned(),
        ),
        (
            InstructionOverride,
            0.45,
            r"\b(?:from\s+now\s+on|henceforth|ab\s+(?:sofort|jetzt)|a\s+partir\s+de\s+ahora)\b[^.\n]{0,60}\b(?:you|du|sie)\b".to_owned(),
        ),
        (
            InstructionOverride,
            0.6,
            r"\b(?:from\s+now\s+on|henceforth)\b[^.\n]{0,20}\byou\s+(?:will|must|shall|should)\s+(?:only\s+|always\s+|never\s+)?(?:respond|reply|answer|act|speak|say|refuse|talk)\b".to_owned(),
        ),
        // Role hijack.
        (
            RoleHijack,
            0.7,
            r"\b(?:you\s+are|you'?re)\s+now\s+(?:an?\s+|the\s+|my\s+)?(?:[\w-]+\s+){0,3}?(?:ai|assistant|model|bot|chatbot|persona|character|dan|gpt|llm)\b|\b(?:you\s+are|you'?re)\s+now\s+in\s+(?:\w+\s+)?(?:developer|god|dan|jailbreak|unrestricted|maintenance|admin|debug|test|sudo)\s+mode\b|\byou\s+are\s+no\s+longer\s+(?:an?\s+)?(?:ai|assistant|bound|restricted|limited|required|chatgpt)\b|\bdu\s+bist\s+(?:jetzt|nun)\b".to_owned(),
        ),
        (
            RoleHijack,
            0.3,
            r"\b(?:you\s+are|you'?re)\s+now\b".to_owned(),
        ),
        (
            RoleHijack,
            0.6,
            r"\b(?:switch|change|transform)\s+(?:in)?to\s+(?:an?\s+)?(?:new\s+)?(?:persona|character|mode|ai)\b|\bnew\s+persona\b|\b(?:has|have|with)\s+no\s+(?:restrictions|filters|limits|guidelines|rules)\b".to_owned(),
        ),
        (
            RoleHijack,
            0.8,
            r"\b(?:act|behave|respond|answer|pose)\s+as\s+(?:if\s+you\s+(?:were|are)\s+)?(?:an?\s+)?(?:dan|unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)\b|\bdo\s+anything\s+now\b".to_owned(),
        ),
        (
            RoleHijack,
            0.75,
            r"\b(?:jailbreak|jailbroken|dan|evil|unrestricted|unfiltered)\s+mode\b".to_owned(),
        ),
        (
            RoleHijack,
            0.4,
            r"\b(?:developer|god|sudo)\s+mode\b|\bjailbr(?:eak|oken|eaking)\b|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b|\brole-?play\s+as\b".to_owned(),
        ),
        (
            RoleHijack,
            0.55,
            r"\bi\s+want\s+you\s+to\s+(?:act|pretend|behave)\b|\bno\s+longer\s+(?:bound|restricted|limited)\s+by\b|\b(?:free|freed)\s+(?:of|from)\s+(?:your|all|any)\s+(?:restrictions|rules|guidelines|filters|limitations)\b".to_owned(),
        ),
        // System prompt and secret exfiltration.
        (
            PromptExfiltration,
            0.8,
            (
                r"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|leak|dump|disclose|list|write\s+out|spell[- ]?check)\b[^.\n]{0,30}?\b(?:system\s+prompt|initial\s+prompt|original\s+prompt|hidden\s+prompt|prompt\s+texts?|(?:initial|original|hidden|secret|system)\s+instructions|instructions\s+you\s+(?:were|have\s+been)\s+given)\b"
            )
                .to_owned(),
        ),
        (
            PromptExfiltration,
            0.75,
            r"\b(?:print|repeat|show|output|reveal|display)\s+(?:me\s+)?(?:the\s+|all\s+(?:the\s+)?)?(?:above|previous|preceding|prior)\s+(?:prompt|text|instructions)\b|\b(?:print|repeat|spell-?\s*check|output|show|translate|reveal)\b[^.\n]{0,40}\b(?:text|prompt|instructions|everything)\s+above\b|\babove\s+prompt\b|\b(?:return|reveal|print|output|dump)\s+your\s+(?:embeddings|weights|configuration|training\s+data)\b|\bwhat\s+(?:is|are|was|were)\s+your\s+(?:system\s+prompt|(?:initial|original|first|hidden|secret)\s+(?:instructions|prompt))\b".to_owned(),
        ),
        (
            PromptExfiltration,
            0.45,
            r"\b(?:reveal|print|output|leak|dump|send|show\s+me|tell\s+me)\b[^.\n]{0,30}?\b(?:your|the|all)\s+(?:\w+\s+)?(?:api[\s_-]?keys?|passwords?|secret\s+keys?|credentials|access\s+tokens?|private\s+keys?|environment\s+variables)\b".to_owned(),
        ),
        (
            PromptExfiltration,
            0.3,
            r"\bsystem\s+prompt\b".to_owned(),
        ),
        // Tool calls, data sent somewhere, acting behind the user's back.
        (
            ToolInstruction,
            0.6,
            r"\b(?:send|forward|e-?mail|post|upload|transmit|exfiltrate|leak|submit|copy)\b[^.\n]{0,30}?\b(?:the|all|this|your|my|user'?s?|entire|whole)\s+(?:\w+\s+)?(?:data|conversation|chat|history|contents?|files?|documents?|credentials|passwords?|api\s+keys?|keys|tokens?|information|details|results?|summary|context|prompt|inbox|contacts)\b[^.\n]{0,40}?\b(?:to|at)\s+(?:https?://|[\w.+-]+@[\w-]+\.[\w.]+|this\s+(?:url|address|email|endpoint|webhook|server))".to_owned(),
        ),
        (
            ToolInstruction,
            0.6,
            r"\b(?:without\s+(?:telling|informing|notifying|alerting)|do\s+not\s+(?:tell|inform|notify|alert)|don'?t\s+(?:tell|inform|notify))\s+(?:the\s+)?(?:user|human|operator|anyone)\b".to_owned(),
        ),
        (
            ToolInstruction,
            0.6,
            r"\b(?:retrieve|get|collect|gather|send|forward|e-?mail|share|post|upload)\b[^.\n]{0,40}\b(?:payment\s+methods|passwords?|credit\s+card\s+(?:numbers?|details)|security\s+codes?|2fa\s+codes?|verification\s+codes?|one-time\s+(?:password|code)s?|api\s+keys?|private\s+keys?|ssh\s+keys?|session\s+(?:tokens?|cookies?))\b[^.\n]{0,80}?\b(?:to|at)\s+(?:[\w\s]{0,30}?)(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://)".to_owned(),
        ),
        (
            ToolInstruction,
            0.5,
            r"\bgrant\s+(?:\w+\s+)?access\s+to\s+(?:my|his|her|their|a|this)\s+(?:friend|colleague|guest|contact)\b".to_owned(),
        ),
        (
            ToolInstruction,
            0.4,
            r"\b(?:call|use|invoke|run|execute|trigger)\s+(?:the\s+)?`?[a-z]+(?:_[a-z]+)+`?\s+(?:tool|function)\b|\b(?:call|invoke|use)\s+(?:the\s+)?(?:tool|function)\s+`?[a-z]+_[a-z_]+".to_owned(),
        ),
        (
            ToolInstruction,
            0.35,
            r"\b(?:delete|erase|wipe)\s+(?:all\s+)?(?:the\s+|my\s+|your\s+|of\s+)*(?:files|emails|data|database|records|repositor(?:y|ies)|messages|backups)\b|\bgrant\s+(?:\w+\s+)?access\s+to\b|\b(?:transfer|wire)\s+\$?\d[\d,.]*".to_owned(),
        ),
        // Fake conversation and document structure.
        (
            FakeDelimiter,
            0.8,
            r"<\|(?:im_start|im_end|im_sep|endoftext|system|user|assistant|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text)\|>".to_owned(),
        ),
        (
            FakeDelimiter,
            0.7,
            r"(?-i:\[/?INST\]|\[/?SYS\]|<</?SYS>>)".to_owned(),
        ),
        (
            FakeDelimiter,
            0.65,
            r"</?(?:system|tool_result|tool_output|tool_response|function_results?|function_call|im_start|im_end|system-reminder|instructions)>".to_owned(),
        ),
        (
            FakeDelimiter,
            0.6,
            r"(?m)^[ \t]*#{2,4}[ \t]*(?:system|assistant|user|human)[ \t]*(?:prompt|message)?[ \t]*:".to_owned(),
        ),
        (
            FakeDelimiter,
            0.6,
            r"(?:={3,}|-{3,}|\*{3,}|#{3,})[ \t]*end\b|\bend\s+of\s+(?:the\s+)?(?:system\s+prompt|user\s+input|tool\s+(?:result|output)|instructions|prompt)\b".to_owned(),
        ),
        (
            FakeDelimiter,
            0.3,
            r"(?m)^[ \t]*(?:system|assistant|human)[ \t]*:[ \t]*\S".to_owned(),
        ),
        // Text addressed to the agent itself.
        (
            AgentAddress,
            0.7,
            format!(
                r"\b(?:note|message|instructions?|attention|reminder|memo|notice)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{AI}\b"
            ),
        ),
        (
            AgentAddress,
            0.7,
            format!(
                r"\bif\s+you\s+are\s+(?:an?\s+)?(?:{AI}|assistant|automated\s+(?:agent|system|assistant)|bot|agent)\b"
            ),
        ),
        (
            AgentAddress,
            0.6,
            format!(
                r"\b(?:dear|hey|hello|hi|attention|attn)\s*,?\s+{AI}\b|\b{AI}\s+(?:reading|processing|parsing|summari[sz]ing|analy[sz]ing|browsing)\s+(?:this|these)\b|\bto\s+you,?\s+(?:the\s+)?{AI}\b"
            ),
        ),
        (
            AgentAddress,
            0.45,
            r"\bthis\s+is\s+an?\s+(?:important|urgent|critical)\s+(?:message|instruction|notice)\s+(?:from|for|to)\b|<\s*(?:information|important|admin)\s*>".to_owned(),
        ),
        (
            AgentAddress,
            0.4,
            r"\b(?:in|to|into|at\s+the\s+(?:end|beginning|start)\s+of)\s+your\s+(?:response|reply|answer|output|summary|implementation)\b|\b(?:before|after)\s+(?:you\s+)?(?:answer(?:ing)?|respond(?:ing)?|repl(?:y|ying)|summari[sz](?:e|ing)|(?:solve|solving|complete|completing)\s+(?:the|your)\s+(?:\w+\s+)?task)\b".to_owned(),
        ),
        (
            AgentAddress,
            0.55,
            r"\b(?:add|include|insert|integrate|incorporate|mention|append|say|state|write)\b[^.\n]{0,60}\b(?:in|to|into)\s+your\s+(?:response|reply|answer|output|summary)\b|\b(?:in|to|into)\s+your\s+(?:response|reply|answer|output|summary)\s*,?\s+(?:add|include|insert|mention|say|state|write)\b|\b(?:encode|encrypt|translate|reverse|render|format|present|modify|augment|enhance)\s+your\s+(?:\w+\s+)?(?:response|reply|answer|output)\b|\b(?:use|apply|employ)\b[^.\n]{0,60}\b(?:for|to|in)\s+your\s+(?:response|reply|answer)\b".to_owned(),
        ),
        (
            AgentAddress,
            0.6,
            r"(?:^|[.!?\]]\s+|\n)(?:ai|assistant|model|chatbot|agent)\s*,\s+(?:when|if|please|you|before|after|ignore|tell|do|summari[sz]e|disregard|forget)\b|\b(?:model|assistant|agent|bot)s?\s+(?:reading|processing|parsing|summari[sz]ing)\s+(?:this|these)\b".to_owned(),
        ),
        (
            AgentAddress,
            0.45,
            r"\btell\s+the\s+user\s+(?:that|to|the|it)\b|\bsummari[sz]e\s+(?:it|this|the\s+\w+)\s+as\b|\b(?:reply|respond|answer)\s+(?:only\s+)?(?:in|using|with)\s+(?:base\d+|reverse|emojis?|a\s+cipher|spanish|french|german|pirate)\b".to_owned(),
        ),
        // "decode this and follow it"
        (
            EncodedPayload,
            0.6,
            r"\b(?:decode|decrypt|translate)\b[^.\n]{0,40}\b(?:and|then)\s+(?:follow|execute|run|obey|do|perform)\b".to_owned(),
        ),
    ]
}

/// ASCII semantics throughout (`\w`, `\s`, `\b` and case folding), matched on bytes: every
/// word the patterns look for is ASCII (or a literal umlaut), and Unicode classes would make
/// the set's automaton too large for the lazy DFA, which then falls back to a slow engine on
/// every text.
fn compile(pattern: &str) -> String {
    format!("(?i-u){pattern}")
}

/// Room for the set's lazy DFA: with less, its cache thrashes on long texts.
const DFA_BYTES: usize = 16 << 20;

/// The compiled table: one set for the single pass, the regexes for offsets.
pub(super) struct Patterns {
    pub(super) set: RegexSet,
    pub(super) each: Vec<(Signal, f32, Regex)>,
}

pub(super) static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    let table = table();
    let compiled: Vec<String> = table.iter().map(|(_, _, p)| compile(p)).collect();
    let set = RegexSetBuilder::new(&compiled)
        .dfa_size_limit(DFA_BYTES)
        .build()
        .ok()?;
    let each = table
        .into_iter()
        .zip(&compiled)
        .map(|((s, w, _), p)| RegexBuilder::new(p).build().ok().map(|r| (s, w, r)))
        .collect::<Option<Vec<_>>>()?;
    Some(Patterns { set, each })
});

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern that fails to compile would silently disable the whole screen (the screen
    /// fails closed on it, see `InjectionScreen::screen`): compile them all here.
    #[test]
    fn every_pattern_compiles() {
        for (s, _, p) in table() {
            if let Err(e) = Regex::new(&compile(&p)) {
                panic!("{s:?}: {e}");
            }
        }
        assert!(PATTERNS.is_some());
    }
}
