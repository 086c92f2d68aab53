//! The agent table, images/agents/agents.txt: the one place a built-in agent
//! is listed. A stanza per agent, a `field: value` line per field, an empty
//! line between stanzas, `#` lines for comments; lists are split on spaces.
//!
//! The Makefile reads the same file with awk (images/agents/docker-build.awk),
//! which is why the format has no quoting and no continuation lines. This file
//! uses nothing of the crate, so tests/images.rs reads the table through it
//! too.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// The table, compiled in.
pub const TEXT: &str = include_str!("../../../images/agents/agents.txt");

/// Where the table is, for its errors.
pub const PATH: &str = "images/agents/agents.txt";

/// Every field a stanza may have, and whether it must.
const FIELDS: [(&str, bool); 15] = [
    ("name", true),
    ("base", true),
    ("package", true),
    ("version", true),
    ("binary", true),
    ("image", true),
    ("image_env", false),
    ("image_file", false),
    ("image_file_text", false),
    ("env", false),
    ("set", false),
    ("state", false),
    ("allow", false),
    ("relay", false),
    ("env_args", false),
];

/// The fields whose words are `NAME=value`.
const PAIRS: [&str; 2] = ["image_env", "set"];

/// One agent: its fields as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Stanza {
    /// The line of its first field.
    pub line: usize,
    fields: BTreeMap<String, String>,
}

impl Stanza {
    /// A field's value; empty when the stanza does not write it.
    pub fn text(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }

    /// A list field's words.
    pub fn words(&self, field: &str) -> Vec<&str> {
        self.text(field).split_whitespace().collect()
    }

    /// A `NAME=value ...` field's pairs (checked when the table was read).
    pub fn pairs(&self, field: &str) -> Vec<(&str, &str)> {
        self.words(field)
            .into_iter()
            .filter_map(|word| word.split_once('='))
            .collect()
    }
}

/// Every stanza of `text`, in order; an error names the first line wrong.
pub fn parse(text: &str) -> Result<Vec<Stanza>> {
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut open: Option<Stanza> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if let Some(stanza) = open.take() {
                stanzas.push(finish(stanza, &stanzas)?);
            }
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            bail!("{PATH}:{number}: `field: value` expected, not {line:?}");
        };
        let (field, value) = (field.trim(), value.trim());
        if !FIELDS.iter().any(|(known, _)| *known == field) {
            bail!("{PATH}:{number}: unknown field `{field}`");
        }
        if PAIRS.contains(&field) {
            if let Some(word) = value.split_whitespace().find(|w| !is_pair(w)) {
                bail!("{PATH}:{number}: {field}: {word:?} is not NAME=value");
            }
        }
        let stanza = open.get_or_insert_with(|| Stanza {
            line: number,
            fields: BTreeMap::new(),
        });
        if stanza
            .fields
            .insert(field.to_string(), value.to_string())
            .is_some()
        {
            bail!("{PATH}:{number}: `{field}` a second time in one stanza");
        }
    }
    if let Some(stanza) = open {
        stanzas.push(finish(stanza, &stanzas)?);
    }
    Ok(stanzas)
}

/// `stanza` once it has every required field and a name of its own.
fn finish(stanza: Stanza, before: &[Stanza]) -> Result<Stanza> {
    let line = stanza.line;
    if let Some((field, _)) = FIELDS
        .iter()
        .find(|(field, required)| *required && stanza.text(field).is_empty())
    {
        bail!("{PATH}:{line}: this stanza has no `{field}`");
    }
    let name = stanza.text("name");
    if name.contains(char::is_whitespace) {
        bail!("{PATH}:{line}: the name {name:?} has a space");
    }
    if before.iter().any(|b| b.text("name") == name) {
        bail!("{PATH}:{line}: `{name}` a second time");
    }
    Ok(stanza)
}

/// `NAME=value`, NAME a variable name.
fn is_pair(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}
