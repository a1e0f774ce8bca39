//! The one request each item becomes.
//!
//! A multiple-choice item is laid out as lm-evaluation-harness lays out CMMLU, so the two
//! harnesses ask the same thing: the suite's description (with the group's name), then each
//! shot as `question\nA. …\nB. …\n答案： X\n\n`, then the question itself ending in the answer
//! cue. Shots are the first k examples of the group's `dev` split. A refusal or open item is its
//! prompt alone.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::item::{Choice, Item, LETTERS, Task};
use crate::suite::Suite;

/// Which OpenAI endpoint is asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/v1/chat/completions`, the whole prompt as one user message.
    #[default]
    Chat,
    /// `/v1/completions`, the prompt as plain text.
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
        }
    }
}

/// How a multiple-choice answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One token with its top log-probabilities; the likeliest option letter wins.
    Logprobs,
    /// A short greedy answer; the letter is extracted by [`crate::answer::letter`].
    Generate,
}

/// How many log-probabilities are asked for the answer's first token.
pub const TOP_LOGPROBS: u32 = 20;
/// Tokens a generated multiple-choice answer may take (lm-evaluation-harness's
/// `max_gen_toks` in the side-by-side comparison).
pub const CHOICE_TOKENS: u32 = 8;
/// Tokens a refusal or open answer may take: enough for the keyword rule, which reads the
/// first 120 characters, to tell a refusal from an answer.
pub const ANSWER_TOKENS: u32 = 192;
/// The same when a judge reads the answers: it must see what follows a short disclaimer.
pub const JUDGED_ANSWER_TOKENS: u32 = 1024;

/// What a run asks: endpoint, method and shots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asking {
    pub endpoint: Endpoint,
    pub method: Method,
    pub shots: usize,
    /// Tokens a refusal or open answer may take.
    pub answer_tokens: u32,
}

fn options(c: &Choice) -> String {
    c.options.iter().zip(LETTERS).map(|(o, l)| format!("\n{l}. {o}")).collect()
}

/// The text of a multiple-choice question, up to and including the answer cue.
fn question(c: &Choice, cue: &str) -> String {
    format!("{}{}\n{cue}", c.question.trim(), options(c))
}

/// The whole prompt of an item.
pub fn text(suite: &Suite, item: &Item, examples: &[Item], shots: usize) -> String {
    match &item.task {
        Task::Choice(c) => {
            let cue = &suite.manifest.prompt.answer;
            let mut out = suite.manifest.prompt.description.replace("{group}", suite.group_name(&item.group));
            for ex in examples.iter().take(shots) {
                if let (Task::Choice(e), Some(letter)) = (&ex.task, ex.gold_letter()) {
                    out.push_str(&question(e, cue));
                    out.push(' ');
                    out.push(letter);
                    out.push_str("\n\n");
                }
            }
            out.push_str(&question(c, cue));
            out
        }
        Task::Refusal { prompt, .. } | Task::Open { prompt } => prompt.clone(),
    }
}

/// The request body for an item's prompt.
pub fn request(model: &str, item: &Item, text: &str, asking: Asking) -> Value {
    let choice = matches!(item.task, Task::Choice(_));
    let logprobs = choice && asking.method == Method::Logprobs;
    let max_tokens = match (choice, logprobs) {
        (true, true) => 1,
        (true, false) => CHOICE_TOKENS,
        (false, _) => asking.answer_tokens,
    };
    let mut body = match asking.endpoint {
        Endpoint::Chat => json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        Endpoint::Completions => json!({"model": model, "prompt": text}),
    };
    body["temperature"] = json!(0);
    body["max_tokens"] = json!(max_tokens);
    // A text continuation answers on its line, as the shots show; lm-evaluation-harness stops
    // its generation there too.
    if choice && !logprobs && asking.endpoint == Endpoint::Completions {
        body["stop"] = json!(["\n"]);
    }
    if logprobs {
        match asking.endpoint {
            Endpoint::Chat => {
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(TOP_LOGPROBS);
            }
            Endpoint::Completions => body["logprobs"] = json!(TOP_LOGPROBS),
        }
    }
    body
}
