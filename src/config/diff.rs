//! What a live reload changes: old config vs new, program by program.
//!
//! A program is unchanged when its whole spec is equal (command, env, user, policy, output,
//! ...); unchanged programs keep running untouched, with the same pids. Pure and linear in
//! the number of programs (a reload of 10,000 programs must not stall PID 1 here); it
//! decides nothing about how a change is applied.

use super::Config;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Linear in the number of programs: each name is looked up in a hash map of the other side.
pub fn diff(old: &Config, new: &Config) -> Diff {
    let (old_names, new_names) = (
        super::name_index(&old.programs),
        super::name_index(&new.programs),
    );
    let mut d = Diff::default();
    for p in &new.programs {
        match old_names
            .get(p.name.as_str())
            .and_then(|i| old.programs.get(i))
        {
            None => d.added.push(p.name.clone()),
            Some(o) if o == p => d.unchanged.push(p.name.clone()),
            Some(_) => d.changed.push(p.name.clone()),
        }
    }
    for p in &old.programs {
        if !new_names.contains(&p.name) {
            d.removed.push(p.name.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::tests::Fake;

    fn cfg(text: &str) -> Config {
        crate::config::schema::validate(text, &Fake).unwrap()
    }

    #[test]
    fn added_removed_changed_unchanged() {
        let old = cfg("programs:\n  a: {command: x}\n  b: {command: y}\n  c: {command: z}\n");
        let new = cfg("programs:\n  a: {command: x}\n  b: {command: y --new}\n  d: {command: w}\n");
        assert_eq!(
            diff(&old, &new),
            Diff {
                added: vec!["d".into()],
                removed: vec!["c".into()],
                changed: vec!["b".into()],
                unchanged: vec!["a".into()],
            }
        );
        assert_eq!(diff(&old, &old).unchanged.len(), 3);
    }
}
