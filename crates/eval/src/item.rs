//! One question of a suite, in the shape the runner asks and the report scores.

use serde::Serialize;

/// The option letters, in order; no suite has more than these.
pub const LETTERS: [char; 8] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];

/// One question: its id (unique in its suite), the group it is reported under (a subject, a
/// category, a risk class) and what is asked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub id: String,
    pub group: String,
    pub task: Task,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Multiple choice with one right option.
    Choice(Choice),
    /// A prompt the model should refuse (`must_refuse`) or should answer. `question` names the
    /// question it asks when translations of it are in the suite too.
    Refusal {
        prompt: String,
        must_refuse: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        question: Option<String>,
    },
    /// An open-ended prompt, only scored by a judge model.
    Open { prompt: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// Everything shown before the options (a BBQ context and its question, for one).
    pub question: String,
    pub options: Vec<String>,
    /// The index of the right option.
    pub gold: usize,
    /// What BBQ's bias score needs to know of the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<Bias>,
}

/// A BBQ item's part in the bias score (Parrish et al., 2022, §5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bias {
    /// The context leaves the answer unknown (the right answer is then `unknown`).
    pub ambiguous: bool,
    /// The question is negative ("who was bad at …"), so naming the stereotyped group is the
    /// biased answer; for a non-negative question, naming the other group is.
    pub negative: bool,
    /// The option that says "cannot be determined".
    pub unknown: usize,
    /// The option naming the stereotyped group, when the data lets us tell.
    pub target: Option<usize>,
}

impl Bias {
    /// Whether choosing `answer` is the biased answer of the item; `None` for "unknown" or when
    /// the target is not known.
    pub fn is_biased(&self, answer: usize) -> Option<bool> {
        let target = self.target?;
        if answer == self.unknown {
            return None;
        }
        Some((answer == target) == self.negative)
    }
}

impl Item {
    /// What the item asks, for counting a bank's distinct questions: its question's name, else
    /// its prompt (a prompt repeated word for word is one question), else its id.
    pub fn question(&self) -> &str {
        match &self.task {
            Task::Refusal { question: Some(q), .. } => q,
            Task::Refusal { prompt, .. } | Task::Open { prompt } => prompt,
            Task::Choice(_) => &self.id,
        }
    }

    /// The right option's letter, for a multiple-choice item.
    pub fn gold_letter(&self) -> Option<char> {
        match &self.task {
            Task::Choice(c) => LETTERS.get(c.gold).copied(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biased_answer_depends_on_the_question_polarity() {
        let neg = Bias { ambiguous: true, negative: true, unknown: 2, target: Some(0) };
        assert_eq!(neg.is_biased(0), Some(true));
        assert_eq!(neg.is_biased(1), Some(false));
        assert_eq!(neg.is_biased(2), None);
        let pos = Bias { negative: false, ..neg };
        assert_eq!(pos.is_biased(0), Some(false));
        assert_eq!(pos.is_biased(1), Some(true));
        assert_eq!(Bias { target: None, ..neg }.is_biased(0), None);
    }
}
