//! Who counts as a developer: bots are left out, and one developer's several accounts are merged.
//!
//! A bot is an account whose login matches a pattern (`*[bot]`, as GitHub names its apps and as
//! OpenDigger filters; `*-bot`, …) or is on a list of known bot logins. Global OpenRank also drops
//! accounts with more than 300 repos in a month (`removeUserRelationshipCount`), which catches the
//! automated accounts no list names; that rule lives with the graph.
//!
//! Merging is declared, never guessed: an alias list names a developer and the logins that are
//! theirs. Every merge made is returned, so a report can show it.

use std::collections::{BTreeMap, BTreeSet};

use crate::row::{Names, Row};

/// Bot rules: lower-case globs with `*` at either end, and exact logins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bots {
    pub patterns: Vec<String>,
    pub logins: BTreeSet<String>,
}

/// Logins of well-known bots that do not end in `[bot]`: the three top "users" of OpenDigger's
/// own test data before it filtered bots (`../shared/oss/opendigger_user_openrank_*`), and common
/// CI and dependency services.
pub const KNOWN_BOTS: [&str; 16] = [
    "direwolf-github",
    "greenkeeperio-bot",
    "coveralls",
    "codecov-io",
    "codecov-commenter",
    "dependabot-preview",
    "renovate-bot",
    "github-actions",
    "travis-ci",
    "k8s-ci-robot",
    "mergify",
    "stale",
    "allcontributors",
    "imgbot",
    "pull",
    "sonarcloud",
];

/// Login patterns of bots.
pub const BOT_PATTERNS: [&str; 5] = ["*[bot]", "*-bot", "*_bot", "*-robot", "bot-*"];

impl Default for Bots {
    fn default() -> Self {
        Bots { patterns: BOT_PATTERNS.iter().map(|p| p.to_string()).collect(), logins: KNOWN_BOTS.iter().map(|l| l.to_string()).collect() }
    }
}

fn glob(pattern: &str, login: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(tail), _) if !tail.ends_with('*') => login.ends_with(tail),
        (_, Some(head)) if !head.starts_with('*') => login.starts_with(head),
        (Some(mid), _) => login.contains(mid.trim_end_matches('*')),
        _ => login == pattern,
    }
}

impl Bots {
    /// No rule at all: every account is a developer.
    pub fn none() -> Bots {
        Bots { patterns: vec![], logins: BTreeSet::new() }
    }

    pub fn is_bot(&self, login: &str) -> bool {
        let login = login.to_ascii_lowercase();
        self.logins.contains(&login) || self.patterns.iter().any(|p| glob(p, &login))
    }

    /// The ids, among those named, that are bots.
    pub fn ids(&self, names: &Names) -> BTreeSet<u64> {
        names.actors.iter().filter(|(_, (_, login))| self.is_bot(login)).map(|(id, _)| *id).collect()
    }
}

/// One developer and the logins that are theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub developer: String,
    pub logins: Vec<String>,
}

/// One merge made: an account counted as another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Merge {
    pub login: String,
    pub id: u64,
    pub into_login: String,
    pub into_id: u64,
}

/// Turns alias declarations into an id mapping, by the logins the names know. The developer's own
/// login, if seen, is the account the others merge into; otherwise the first of their logins seen.
/// Logins are compared without case, as GitHub does.
pub fn resolve(aliases: &[Alias], names: &Names) -> (BTreeMap<u64, u64>, Vec<Merge>) {
    let by_login: BTreeMap<String, u64> = names.actors.iter().map(|(id, (_, login))| (login.to_ascii_lowercase(), *id)).collect();
    let mut map = BTreeMap::new();
    let mut merges = Vec::new();
    for a in aliases {
        let mut logins = vec![a.developer.to_ascii_lowercase()];
        logins.extend(a.logins.iter().map(|l| l.to_ascii_lowercase()));
        let seen: Vec<(String, u64)> = logins.iter().filter_map(|l| by_login.get(l).map(|id| (l.clone(), *id))).collect();
        let Some((into_login, into_id)) = seen.first().cloned() else { continue };
        for (login, id) in seen.into_iter().skip(1) {
            if id != into_id && map.insert(id, into_id).is_none() {
                merges.push(Merge { login, id, into_login: into_login.clone(), into_id });
            }
        }
    }
    merges.sort();
    (map, merges)
}

/// Applies an id mapping to rows: actors and authors both.
pub fn merge_rows(rows: &mut [Row], map: &BTreeMap<u64, u64>) {
    if map.is_empty() {
        return;
    }
    for r in rows {
        if let Some(to) = map.get(&r.actor) {
            r.actor = *to;
        }
        if let Some(to) = map.get(&r.author) {
            r.author = *to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_by_pattern_and_by_name_and_not_people() {
        let b = Bots::default();
        for bot in ["dependabot[bot]", "Renovate[bot]", "greenkeeperio-bot", "coveralls", "direwolf-github", "bot-x"] {
            assert!(b.is_bot(bot), "{bot}");
        }
        for person in ["botanist", "abbott", "robotics-fan", "alice"] {
            assert!(!b.is_bot(person), "{person}");
        }
    }

    #[test]
    fn aliases_merge_into_the_developer_and_say_so() {
        let mut names = Names::default();
        names.actor(1, 0, "Alice");
        names.actor(2, 0, "alice-work");
        names.actor(3, 0, "bob");
        let aliases = [Alias { developer: "alice".into(), logins: vec!["ALICE-WORK".into(), "never-seen".into()] }];
        let (map, merges) = resolve(&aliases, &names);
        assert_eq!(map, BTreeMap::from([(2, 1)]));
        assert_eq!(merges, [Merge { login: "alice-work".into(), id: 2, into_login: "alice".into(), into_id: 1 }]);
    }
}
