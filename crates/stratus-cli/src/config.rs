//! Config files: defaults for any option of any command, in TOML, so a site can keep its
//! settings in one reviewed file instead of long command lines.
//!
//! ```toml
//! threads = 2                 # top level: options every command takes
//!
//! [ndjson.stats]              # a table per command path
//! max-line-bytes = "64M"
//! check-references = true
//! ```
//!
//! Values become command-line arguments placed before the user's own, and the grammar lets
//! a later occurrence override an earlier one, so the command line always wins. Keys are
//! the long option names; `true` turns a flag on, `false` leaves it off, a list repeats
//! the option.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Command;

/// Finds `-c FILE` / `--config FILE` / `--config=FILE` in the raw arguments, or
/// `STRATUS_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "-c" || s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("STRATUS_CONFIG").map(PathBuf::from)
}

/// Returns `args` with the config file's defaults inserted: top-level keys right after the
/// program name, a command's table right after that command's name.
pub fn apply(cmd: &Command, args: Vec<OsString>, path: &Path) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))?;

    // Where each command of the invocation sits in `args`.
    let mut chain: Vec<(&Command, usize)> = vec![(cmd, 0)];
    for (i, a) in args.iter().enumerate().skip(1) {
        let Some(current) = chain.last().map(|(c, _)| *c) else {
            break;
        };
        if !current.has_subcommands() {
            break;
        }
        if let Some(sub) = current.find_subcommand(a.to_string_lossy().as_ref()) {
            chain.push((sub, i));
        }
    }

    validate(cmd, &table, path, &[])?;
    // Each command of the invocation takes the plain keys of its own table.
    let mut inserts: Vec<(usize, Vec<OsString>)> = Vec::new();
    let mut node = Some(&table);
    let mut names: Vec<&str> = Vec::new();
    for (depth, (c, pos)) in chain.iter().enumerate() {
        if depth > 0 {
            names.push(c.get_name());
            node = node
                .and_then(|t| t.get(c.get_name()))
                .and_then(|v| v.as_table());
        }
        let Some(t) = node else { break };
        let opts = t.iter().filter(|(_, v)| !v.is_table());
        inserts.push((*pos, to_args(c, opts, path, &section_name(&names))?));
    }
    let mut out = Vec::with_capacity(args.len() + 8);
    for (i, a) in args.into_iter().enumerate() {
        out.push(a);
        for (pos, extra) in &inserts {
            if *pos == i {
                out.extend(extra.iter().cloned());
            }
        }
    }
    Ok(out)
}

fn section_name(names: &[&str]) -> String {
    if names.is_empty() {
        "top level".to_owned()
    } else {
        names.join(".")
    }
}

/// Checks every table and key of the file against the grammar, not only those of the
/// command being run, so a typo is caught the first time the file is used.
fn validate(cmd: &Command, table: &toml::Table, path: &Path, names: &[&str]) -> anyhow::Result<()> {
    let section = section_name(names);
    let help: String = names.iter().map(|n| format!("{n} ")).collect();
    for (key, value) in table {
        if let Some(sub) = value.as_table() {
            let Some(c) = cmd.find_subcommand(key) else {
                bail!(
                    "{}: [{section}] has no command '{key}' (see stratus {help}--help)",
                    path.display()
                );
            };
            let mut deeper = names.to_vec();
            deeper.push(key);
            validate(c, sub, path, &deeper)?;
        } else if key == "config" {
            bail!(
                "{}: [{section}] 'config' cannot be set in a config file",
                path.display()
            );
        } else if find_arg(cmd, key).is_none() {
            bail!(
                "{}: [{section}] has no option '{key}' (see stratus {help}--help)",
                path.display()
            );
        }
    }
    Ok(())
}

fn find_arg<'a>(cmd: &'a Command, long: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(long))
}

fn to_args<'a>(
    cmd: &Command,
    opts: impl Iterator<Item = (&'a String, &'a toml::Value)>,
    path: &Path,
    section: &str,
) -> anyhow::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for (key, value) in opts {
        // validate() has vouched for every key.
        let Some(arg) = find_arg(cmd, key) else {
            continue;
        };
        let flag = !arg.get_action().takes_values();
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for v in values {
            match (flag, v) {
                (true, toml::Value::Boolean(true)) => out.push(format!("--{key}").into()),
                (true, toml::Value::Boolean(false)) => {}
                (true, _) => bail!(
                    "{}: [{section}] '{key}' is a flag: set it to true or false",
                    path.display()
                ),
                (false, toml::Value::String(s)) => out.push(format!("--{key}={s}").into()),
                (false, toml::Value::Integer(n)) => out.push(format!("--{key}={n}").into()),
                (false, toml::Value::Float(n)) => out.push(format!("--{key}={n}").into()),
                (false, toml::Value::Boolean(b)) => out.push(format!("--{key}={b}").into()),
                (false, _) => bail!(
                    "{}: [{section}] '{key}' must be a string, number or list",
                    path.display()
                ),
            }
        }
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn inserts_defaults_before_the_users_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stratus.toml");
        std::fs::write(
            &path,
            "threads = 2\n[ndjson.stats]\nmax-line-bytes = \"64M\"\ncheck-references = true\njson = false\n[synth.population]\npatients = 5\n",
        )
        .unwrap();
        let cmd = crate::cli::Cli::command();
        let got = apply(
            &cmd,
            os(&[
                "stratus",
                "-c",
                "x",
                "ndjson",
                "stats",
                "dir",
                "--max-line-bytes",
                "1K",
            ]),
            &path,
        )
        .unwrap();
        assert_eq!(
            strings(got),
            vec![
                "stratus",
                "--threads=2",
                "-c",
                "x",
                "ndjson",
                "stats",
                "--check-references",
                "--max-line-bytes=64M",
                "dir",
                "--max-line-bytes",
                "1K"
            ]
        );
    }

    #[test]
    fn names_unknown_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[ndjson.stats]\nmax-lines = 3\n").unwrap();
        let cmd = crate::cli::Cli::command();
        let err = apply(&cmd, os(&["stratus", "ndjson", "stats", "d"]), &path).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "[ndjson.stats] has no option 'max-lines' (see stratus ndjson stats --help)"
            ),
            "{err}"
        );
    }

    #[test]
    fn names_unknown_commands_anywhere_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[synth.populaton]\npatients = 3\n").unwrap();
        let cmd = crate::cli::Cli::command();
        let err = apply(&cmd, os(&["stratus", "ndjson", "stats", "d"]), &path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("[synth] has no command 'populaton' (see stratus synth --help)"),
            "{err}"
        );
    }

    #[test]
    fn finds_the_config_argument() {
        assert_eq!(
            config_path(&os(&["s", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_path(&os(&["s", "x", "--config=b.toml"])),
            Some("b.toml".into())
        );
        assert_eq!(
            config_path(&os(&["s", "-c", "c.toml", "demo"])),
            Some("c.toml".into())
        );
    }
}
