//! Tool calls the embedded model cannot get wrong: a llama.cpp grammar (GBNF) for a call whose name is
//! one of the tools' and whose arguments follow that tool's JSON schema. The grammar is lazy: the model
//! writes freely until a call begins (`<tool_call>`, or `{` or a fence as the first thing it writes), and from
//! there every token must keep the call valid, so the arguments it writes always parse.

use serde_json::{Map, Value};

use crate::llm::ToolSpec;

/// A grammar for the calls, and the patterns that switch it on.
#[derive(Debug, Clone, PartialEq)]
pub struct CallGrammar {
    pub gbnf: String,
    /// Regular expressions from the start of the answer; the grammar takes over from the first group.
    pub triggers: Vec<String>,
}

/// JSON's building blocks, for schemas that say no more than "any value" or "a string".
const PRIMITIVES: &str = r#"ws ::= [ \t\n]{0,20}
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
integer ::= "-"? ( [0-9] | [1-9] [0-9]{1,15} )
number ::= integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,4} )?
boolean ::= "true" | "false"
"#;

/// The grammar for calls to `tools` (none without tools).
pub fn for_tools(tools: &[ToolSpec]) -> Option<CallGrammar> {
    if tools.is_empty() {
        return None;
    }
    let mut rules = Rules::default();
    let calls: Vec<String> = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let arguments = rules.value(&format!("tool{i}-arguments"), &tool.parameters);
            let body =
                format!(r#"{} ws "," ws "\"arguments\"" ws ":" ws {arguments}"#, literal(&json_string(&tool.name)));
            rules.add(format!("tool{i}"), body)
        })
        .collect();
    let mut gbnf = String::from(
        r#"root ::= tagged | fenced | call
fenced ::= "```" "json"? ws call ws "```"
tagged ::= "<tool_call>" ws call ws "</tool_call>" ( ws "<tool_call>" ws call ws "</tool_call>" )*
call ::= "{" ws "\"name\"" ws ":" ws call-body ws "}"
"#,
    );
    gbnf.push_str(&format!("call-body ::= {}\n", calls.join(" | ")));
    gbnf.push_str(PRIMITIVES);
    for (name, body) in rules.defined {
        gbnf.push_str(&format!("{name} ::= {body}\n"));
    }
    Some(CallGrammar { gbnf, triggers: vec![r"[\s\S]*?(<tool_call>[\s\S]*)".into(), r"\s*((?:\{|```)[\s\S]*)".into()] })
}

#[derive(Default)]
struct Rules {
    defined: Vec<(String, String)>,
}

impl Rules {
    fn add(&mut self, name: String, body: String) -> String {
        self.defined.push((name.clone(), body));
        name
    }

    /// An expression for a value that follows `schema`; rules it needs are named after `name`.
    fn value(&mut self, name: &str, schema: &Value) -> String {
        let Some(schema) = schema.as_object() else { return "value".into() };
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let choices: Vec<String> = values.iter().map(|v| literal(&v.to_string())).collect();
            return format!("( {} )", choices.join(" | "));
        }
        if let Some(value) = schema.get("const") {
            return literal(&value.to_string());
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(choices) = schema.get(key).and_then(Value::as_array) {
                let choices: Vec<String> =
                    choices.iter().enumerate().map(|(i, s)| self.value(&format!("{name}-{i}"), s)).collect();
                return format!("( {} )", choices.join(" | "));
            }
        }
        match schema.get("type") {
            Some(Value::Array(types)) => {
                let choices: Vec<String> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .enumerate()
                    .map(|(i, t)| self.typed(&format!("{name}-{i}"), t, schema))
                    .collect();
                format!("( {} )", choices.join(" | "))
            }
            Some(Value::String(t)) => self.typed(name, t, schema),
            _ => "value".into(),
        }
    }

    fn typed(&mut self, name: &str, kind: &str, schema: &Map<String, Value>) -> String {
        match kind {
            "string" => "string".into(),
            "integer" => "integer".into(),
            "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => r#""null""#.into(),
            "array" => {
                let item = match schema.get("items") {
                    Some(items) => self.value(&format!("{name}-item"), items),
                    None => "value".into(),
                };
                let body = format!(r#""[" ws ( {item} ( ws "," ws {item} )* )? ws "]""#);
                self.add(name.to_string(), body)
            }
            "object" => self.object(name, schema),
            _ => "value".into(),
        }
    }

    /// An object with the schema's properties in its order: the required ones always, the others
    /// optional, commas only between those present. Without properties, any object.
    fn object(&mut self, name: &str, schema: &Map<String, Value>) -> String {
        let Some(properties) = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) else {
            return "object".into();
        };
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let members: Vec<(String, bool)> = properties
            .iter()
            .enumerate()
            .map(|(i, (key, property))| {
                let value = self.value(&format!("{name}-{i}"), property);
                (format!(r#"{} ws ":" ws {value}"#, literal(&json_string(key))), required.contains(&key.as_str()))
            })
            .collect();
        // after[i]: members i.. once one has been written (each with its comma);
        // start[i]: members i.. when none has been written yet. None: nothing (empty).
        let mut after: Option<String> = None;
        let mut start: Option<String> = None;
        for (i, (member, is_required)) in members.iter().enumerate().rev() {
            let rest = after.as_deref();
            let next_start = match (is_required, &start) {
                (true, _) => seq(&[member, rest.unwrap_or_default()]),
                (false, Some(later)) => format!("( {} | {later} )", seq(&[member, rest.unwrap_or_default()])),
                (false, None) => format!("( {} )?", seq(&[member, rest.unwrap_or_default()])),
            };
            if i > 0 {
                let next_after = match is_required {
                    true => seq(&[r#"ws "," ws"#, member, rest.unwrap_or_default()]),
                    false => seq(&[&format!(r#"( ws "," ws {member} )?"#), rest.unwrap_or_default()]),
                };
                after = Some(self.add(format!("{name}-after{i}"), next_after));
            }
            start = Some(self.add(format!("{name}-start{i}"), next_start));
        }
        let body = seq(&[r#""{" ws"#, start.as_deref().unwrap_or_default(), r#"ws "}""#]);
        self.add(name.to_string(), body)
    }
}

/// GBNF parts in sequence (empty ones left out).
fn seq(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// `text` as a GBNF string literal.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec { name: name.into(), description: String::new(), parameters, strict: false }
    }

    #[test]
    fn no_tools_no_grammar() {
        assert_eq!(for_tools(&[]), None);
    }

    #[test]
    fn each_tool_is_a_choice_with_its_arguments_schema() {
        let grammar = for_tools(&[
            spec(
                "get_current_time",
                json!({"type": "object", "properties": {"timezone": {"type": ["string", "null"]}}, "required": []}),
            ),
            spec(
                "search",
                json!({"type": "object", "properties": {
                    "query": {"type": "string"}, "limit": {"type": "integer"},
                    "mode": {"enum": ["fast", "deep"]}, "tags": {"type": "array", "items": {"type": "string"}}},
                    "required": ["query"]}),
            ),
        ])
        .unwrap();
        let g = &grammar.gbnf;
        assert!(g.contains("call-body ::= tool0 | tool1\n"), "{g}");
        assert!(
            g.contains(r#"tool0 ::= "\"get_current_time\"" ws "," ws "\"arguments\"" ws ":" ws tool0-arguments"#),
            "{g}"
        );
        // An optional member may be left out: `{}` is valid arguments for the first tool.
        assert!(g.contains(r#"tool0-arguments-start0 ::= ( "\"timezone\"" ws ":" ws ( string | "null" ) )?"#), "{g}");
        assert!(g.contains(r#"tool0-arguments ::= "{" ws tool0-arguments-start0 ws "}""#), "{g}");
        // The required `query` comes first and is not optional; the others follow, each with its comma.
        assert!(g.contains(r#"tool1-arguments-start0 ::= "\"query\"" ws ":" ws string tool1-arguments-after1"#), "{g}");
        assert!(
            g.contains(r#"tool1-arguments-after2 ::= ( ws "," ws "\"mode\"" ws ":" ws ( "\"fast\"" | "\"deep\"" ) )? tool1-arguments-after3"#),
            "{g}"
        );
        assert!(g.contains(r#"tool1-arguments-3 ::= "[" ws ( string ( ws "," ws string )* )? ws "]""#), "{g}");
        assert!(!g.contains("  "), "no empty parts: {g}");
        assert_eq!(grammar.triggers.len(), 2);
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(literal(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(literal(&json_string("q\"")), r#""\"q\\\"\"""#);
    }
}
