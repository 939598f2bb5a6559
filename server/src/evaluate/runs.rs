//! Running a case against the agent: one exchange, or a simulated conversation in which a model
//! plays the user (the reference's `ConversationSimulator`).

use serde::Serialize;
use serde_json::{Value, json};

use super::dataset::no_expectations;
use super::dataset::{Case, CaseKind, Expectations};
use super::judge::Judge;
use super::target::{Target, Turn};

/// A case and what the agent did with it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRun {
    pub case: Case,
    pub session_id: String,
    pub turns: Vec<Turn>,
}

impl CaseRun {
    pub fn expectations(&self) -> &Expectations {
        match &self.case.kind {
            CaseKind::SingleTurn { expectations, .. } => expectations,
            CaseKind::Simulated { .. } => no_expectations(),
        }
    }

    pub fn final_answer(&self) -> String {
        self.turns.last().map(|t| t.answer.clone()).unwrap_or_default()
    }

    /// The first error the agent gave, if any.
    pub fn error(&self) -> Option<&str> {
        self.turns.iter().find_map(|t| t.error.as_deref())
    }
}

/// The simulated user says this when its goal is met.
const DONE: &str = "[GOAL ACHIEVED]";

/// Default turns of a simulated conversation (the reference's `max_turns`).
pub const DEFAULT_MAX_TURNS: usize = 5;

pub async fn run_case(case: Case, target: &Target, user_model: &Judge) -> CaseRun {
    let session_id = format!("eval-{}-{}", case.name, uuid::Uuid::new_v4().simple());
    let turns = match &case.kind {
        CaseKind::SingleTurn { input, .. } => vec![target.respond(input, &session_id).await],
        CaseKind::Simulated { goal, persona, guidelines, max_turns } => {
            let max = max_turns.unwrap_or(DEFAULT_MAX_TURNS).max(1);
            simulate(target, user_model, goal, persona.as_deref(), guidelines, max, &session_id).await
        }
    };
    CaseRun { case, session_id, turns }
}

async fn simulate(
    target: &Target,
    user_model: &Judge,
    goal: &str,
    persona: Option<&str>,
    guidelines: &[String],
    max_turns: usize,
    session: &str,
) -> Vec<Turn> {
    let mut system = format!("You are role-playing a user talking to an AI assistant. Your goal: {goal}.\n");
    if let Some(persona) = persona {
        system.push_str(&format!("Your persona: {persona}\n"));
    }
    for g in guidelines {
        system.push_str(&format!("Guideline: {g}\n"));
    }
    system.push_str(&format!(
        "Write only the user's next message, in character, without quotes or labels. When your goal has been \
         achieved, reply with exactly {DONE}."
    ));
    let mut history: Vec<Value> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut transcript = String::new();
    for n in 0..max_turns {
        let prompt = if transcript.is_empty() {
            "The conversation has not started. Write your first message.".to_string()
        } else {
            format!("The conversation so far:\n{transcript}\nWrite your next message (or {DONE}).")
        };
        let message = match user_model.ask(&system, prompt).await {
            Ok(reply) => reply.trim().trim_matches('"').to_string(),
            // The simulated user is unavailable: begin with the goal itself, or end here.
            Err(error) if n == 0 => {
                tracing::warn!(%error, "the simulated user did not answer; starting from the goal");
                goal.to_string()
            }
            Err(error) => {
                tracing::warn!(%error, "the simulated user did not answer; ending the conversation");
                break;
            }
        };
        if message.contains(DONE) || (message.is_empty() && n > 0) {
            break;
        }
        let message = if message.is_empty() { goal.to_string() } else { message };
        history.push(json!({"role": "user", "content": message}));
        let turn = target.respond(&history, session).await;
        transcript.push_str(&format!("User: {}\nAssistant: {}\n", message, turn.answer));
        history.extend(turn.output.iter().cloned());
        let failed = turn.error.is_some();
        turns.push(turn);
        if failed {
            break;
        }
    }
    turns
}
