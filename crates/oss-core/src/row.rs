//! The compact record an event is reduced to: the columns the measures read, with every name
//! replaced by its id. Names (logins, repo names, organisations) are kept once per segment, apart
//! from the rows, in [`Names`].

use std::collections::BTreeMap;

use crate::event::{Event, Kind};

/// The actions the measures tell apart; the rest are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Action {
    None = 0,
    Opened = 1,
    Closed = 2,
    Created = 3,
    Reopened = 4,
    Added = 5,
    Deleted = 6,
    Other = 7,
}

impl Action {
    pub fn of(name: Option<&str>) -> Action {
        match name {
            None => Action::None,
            Some("opened") => Action::Opened,
            Some("closed") => Action::Closed,
            Some("created") => Action::Created,
            Some("reopened") => Action::Reopened,
            Some("added") => Action::Added,
            Some("deleted") => Action::Deleted,
            Some(_) => Action::Other,
        }
    }

    pub fn from_code(c: u8) -> Action {
        match c {
            1 => Action::Opened,
            2 => Action::Closed,
            3 => Action::Created,
            4 => Action::Reopened,
            5 => Action::Added,
            6 => Action::Deleted,
            7 => Action::Other,
            _ => Action::None,
        }
    }
}

/// One event, reduced. Ids are GitHub's; 0 stands for "none" (GitHub ids start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    pub at_s: i64,
    pub kind: Kind,
    /// For `Kind::Other`, the index of its type name in [`Names::other_types`].
    pub other_type: u16,
    pub action: Action,
    pub actor: u64,
    pub repo: u64,
    pub org: u64,
    pub event_id: u64,
    /// The issue's or pull request's id (not its number).
    pub issue: u64,
    /// The issue's or pull request's number in its repo, for links.
    pub number: u32,
    pub comment: u64,
    pub push: u64,
    /// A closed pull request that was merged.
    pub merged: bool,
    /// Who opened the issue or pull request.
    pub author: u64,
    /// An issue or pull request titled `[snyk]…`, which OpenDigger's global OpenRank leaves out.
    pub snyk: bool,
}

/// The names behind the ids of a set of rows. Where an id has had several names (renames), the
/// name last seen wins: later events overwrite earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// id → (seen at, login).
    pub actors: BTreeMap<u64, (i64, String)>,
    /// id → (seen at, repo name).
    pub repos: BTreeMap<u64, (i64, String)>,
    /// id → (seen at, organisation login).
    pub orgs: BTreeMap<u64, (i64, String)>,
    /// Event types the measures do not read, kept for the type counts.
    pub other_types: Vec<String>,
}

fn note(map: &mut BTreeMap<u64, (i64, String)>, id: u64, at_s: i64, name: &str) {
    if id == 0 {
        return;
    }
    match map.get_mut(&id) {
        Some(seen) if seen.0 > at_s || (seen.0 == at_s && seen.1.as_str() >= name) => {}
        Some(seen) => *seen = (at_s, name.to_string()),
        None => {
            map.insert(id, (at_s, name.to_string()));
        }
    }
}

impl Names {
    /// Keeps a name, unless a later (or, at the same second, greater) one is known: the result
    /// does not depend on the order names arrive in.
    pub fn actor(&mut self, id: u64, at_s: i64, login: &str) {
        note(&mut self.actors, id, at_s, login);
    }

    pub fn repo(&mut self, id: u64, at_s: i64, name: &str) {
        note(&mut self.repos, id, at_s, name);
    }

    pub fn org(&mut self, id: u64, at_s: i64, login: &str) {
        note(&mut self.orgs, id, at_s, login);
    }

    /// The index of an event type the measures do not read.
    pub fn other_type(&mut self, name: &str) -> u16 {
        if let Some(i) = self.other_types.iter().position(|t| t == name) {
            return i as u16;
        }
        // GitHub has about twenty event types; a flood of invented ones shares the last slot.
        if self.other_types.len() >= usize::from(u16::MAX) {
            return u16::MAX - 1;
        }
        self.other_types.push(name.to_string());
        (self.other_types.len() - 1) as u16
    }

    /// Adds another set of names (from another segment).
    pub fn merge(&mut self, other: &Names) -> Vec<u16> {
        for (id, (at, n)) in &other.actors {
            self.actor(*id, *at, n);
        }
        for (id, (at, n)) in &other.repos {
            self.repo(*id, *at, n);
        }
        for (id, (at, n)) in &other.orgs {
            self.org(*id, *at, n);
        }
        // How the other set's type indices map into this one.
        other.other_types.iter().map(|t| self.other_type(t)).collect()
    }

    pub fn login(&self, id: u64) -> Option<&str> {
        self.actors.get(&id).map(|x| x.1.as_str())
    }

    pub fn repo_name(&self, id: u64) -> Option<&str> {
        self.repos.get(&id).map(|x| x.1.as_str())
    }

    pub fn org_login(&self, id: u64) -> Option<&str> {
        self.orgs.get(&id).map(|x| x.1.as_str())
    }

    /// The type name of a row.
    pub fn type_name(&self, r: &Row) -> &str {
        match r.kind {
            Kind::Other => self.other_types.get(usize::from(r.other_type)).map_or("Other", String::as_str),
            k => k.name(),
        }
    }
}

/// Reduces an event to its row, noting its names.
pub fn reduce(e: &Event, names: &mut Names) -> Row {
    names.actor(e.actor_id, e.at_s, &e.actor_login);
    names.repo(e.repo_id, e.at_s, &e.repo_name);
    if let (Some(id), Some(login)) = (e.org_id, e.org_login.as_deref()) {
        names.org(id, e.at_s, login);
    }
    if let (Some(id), Some(login)) = (e.issue_author_id, e.issue_author_login.as_deref()) {
        names.actor(id, e.at_s, login);
    }
    let other_type = if e.kind == Kind::Other { names.other_type(&e.type_name) } else { 0 };
    Row {
        at_s: e.at_s,
        kind: e.kind,
        other_type,
        action: Action::of(e.action.as_deref()),
        actor: e.actor_id,
        repo: e.repo_id,
        org: e.org_id.unwrap_or(0),
        event_id: e.id,
        issue: e.issue_id.unwrap_or(0),
        number: e.number.unwrap_or(0),
        comment: e.comment_id.unwrap_or(0),
        push: e.push_id.unwrap_or(0),
        merged: e.pull_merged,
        author: e.issue_author_id.unwrap_or(0),
        snyk: e.snyk,
    }
}
