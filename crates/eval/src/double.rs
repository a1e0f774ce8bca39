//! A test double of a model, for tests and `aiplus eval bench`: it answers every request at
//! once with one fixed letter, as text and as the likeliest first token (with `A`, or `B` when
//! the letter is `A`, behind it), and refuses the prompts it is told to. It is not a model.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::prompt::Endpoint;
use crate::run::{CallError, Model};

pub struct Constant {
    pub letter: char,
    /// Prompts answered with a refusal instead ("抱歉，我不能回答这个问题。").
    pub refuse: HashSet<String>,
}

impl Constant {
    pub fn new(letter: char) -> Constant {
        Constant { letter, refuse: HashSet::new() }
    }

    /// The response it gives to a prompt.
    pub fn answer(&self, prompt: &str, endpoint: Endpoint) -> Value {
        let text =
            if self.refuse.contains(prompt) { "抱歉，我不能回答这个问题。".to_string() } else { self.letter.to_string() };
        let runner_up = if self.letter == 'A' { "B" } else { "A" };
        match endpoint {
            Endpoint::Chat => json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                "logprobs": {"content": [{"token": text, "logprob": -0.1,
                    "top_logprobs": [{"token": text, "logprob": -0.1}, {"token": runner_up, "logprob": -2.4}]}]}}]}),
            Endpoint::Completions => json!({"choices": [{"index": 0, "text": text, "finish_reason": "stop",
                "logprobs": {"top_logprobs": [{text.clone(): -0.1, runner_up: -2.4}]}}]}),
        }
    }
}

/// The prompt of a request body: the last message's content, or the completion prompt.
pub fn prompt_of(body: &Value) -> &str {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .or_else(|| body["prompt"].as_str())
        .unwrap_or_default()
}

impl Model for Constant {
    async fn call(&self, endpoint: Endpoint, body: &Value) -> Result<Value, CallError> {
        Ok(self.answer(prompt_of(body), endpoint))
    }
}
