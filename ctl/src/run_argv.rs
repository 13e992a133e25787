//! `gadgetctl run IMAGE [OPTIONS and GADGET PARAMETERS in any order]`.
//!
//! clap cannot mix a free-form tail (the gadget's parameters, known only
//! once the agent has described the gadget) with options after it, so the
//! command line of `run` is put in order before clap sees it: gadgetctl's own
//! options (those `gadgetctl run --help` lists, and the global ones) first,
//! then the gadget, then everything else, which becomes the gadget's
//! parameters. A gadget parameter spelled like one of gadgetctl's options can
//! still be given as `-p NAME=VALUE`; everything after `--` goes to the gadget.

use std::ffi::OsString;

/// One option gadgetctl itself takes: its spellings and whether it takes a value.
struct OwnOption {
    longs: Vec<String>,
    shorts: Vec<char>,
    takes_value: bool,
}

/// The options of `run` plus the global ones, from clap's definition.
fn own_options(root: &clap::Command) -> Vec<OwnOption> {
    let run = root.find_subcommand("run");
    options_of(
        root.get_arguments()
            .filter(|a| a.is_global_set())
            .chain(run.into_iter().flat_map(|r| r.get_arguments())),
    )
}

fn options_of<'a>(args: impl Iterator<Item = &'a clap::Arg>) -> Vec<OwnOption> {
    args.filter(|a| !a.is_positional())
        .map(|a| OwnOption {
            longs: a
                .get_long_and_visible_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .chain(
                    a.get_aliases()
                        .unwrap_or_default()
                        .into_iter()
                        .map(str::to_string),
                )
                .collect(),
            shorts: a.get_short_and_visible_aliases().unwrap_or_default(),
            takes_value: a.get_action().takes_values(),
        })
        .collect()
}

/// The own option `token` names (`--long`, `--long=value`, `-s`, `-svalue`),
/// and whether its value is the next token.
fn own_option<'a>(options: &'a [OwnOption], token: &str) -> Option<(&'a OwnOption, bool)> {
    if let Some(body) = token.strip_prefix("--") {
        let (name, inline) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let o = options.iter().find(|o| o.longs.iter().any(|l| l == name))?;
        return Some((o, o.takes_value && !inline));
    }
    let mut chars = token.strip_prefix('-')?.chars();
    let c = chars.next()?;
    let o = options.iter().find(|o| o.shorts.contains(&c))?;
    Some((o, o.takes_value && chars.next().is_none()))
}

/// The index of the subcommand in `args` (after global options), if it is `run`.
fn run_index(root: &clap::Command, args: &[OsString]) -> Option<usize> {
    let options = options_of(root.get_arguments());
    let mut i = 1;
    while let Some(token) = args.get(i).and_then(|a| a.to_str()) {
        if !token.starts_with('-') {
            return (token == "run").then_some(i);
        }
        i += match own_option(&options, token) {
            Some((_, true)) => 2,
            _ => 1,
        };
    }
    None
}

/// The command line with `run`'s own options moved before the gadget and
/// the gadget's parameters after it; other command lines are returned as
/// they are. Non-UTF-8 tokens are left where they are (clap reports them).
pub fn reorder(root: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let Some(run_at) = run_index(root, &args) else {
        return args;
    };
    let options = own_options(root);
    let mut own: Vec<OsString> = Vec::new();
    let mut gadget: Option<OsString> = None;
    let mut params: Vec<OsString> = Vec::new();
    let mut rest = args[run_at + 1..].iter();
    while let Some(arg) = rest.next() {
        let Some(token) = arg.to_str() else {
            own.push(arg.clone());
            continue;
        };
        if token == "--" {
            let mut tail = rest.by_ref().cloned();
            if gadget.is_none() {
                gadget = tail.next();
            }
            params.extend(tail);
            break;
        }
        if let Some((_, value_follows)) = own_option(&options, token) {
            own.push(arg.clone());
            if value_follows && let Some(v) = rest.next() {
                own.push(v.clone());
            }
        } else if gadget.is_some() {
            params.push(arg.clone());
        } else if token.starts_with('-') && token.len() > 1 {
            // Before the gadget: left for clap to report.
            own.push(arg.clone());
        } else {
            gadget = Some(arg.clone());
        }
    }
    let mut out: Vec<OsString> = args[..=run_at].to_vec();
    out.extend(own);
    out.extend(gadget);
    out.extend(params);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn reordered(line: &str) -> String {
        let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
        let out = reorder(&crate::Cli::command(), args);
        out.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn own_options_move_before_the_gadget() {
        assert_eq!(
            reordered("gadgetctl run trace_open --targ_failed --timeout 1s"),
            "gadgetctl run --timeout 1s trace_open --targ_failed"
        );
        assert_eq!(
            reordered(
                "gadgetctl run g.o --targ_pid 7 -o json --name=x -d --pull never --targ_failed"
            ),
            "gadgetctl run -o json --name=x -d --pull never g.o --targ_pid 7 --targ_failed"
        );
        assert_eq!(
            reordered("gadgetctl --address /s run -ojson g.o --address=/t --x -- --timeout 1s"),
            "gadgetctl --address /s run -ojson --address=/t g.o --x --timeout 1s"
        );
        // Negative values stay with their parameter.
        assert_eq!(
            reordered("gadgetctl run g.o --targ_pid -1 --max-rows 3"),
            "gadgetctl run --max-rows 3 g.o --targ_pid -1"
        );
    }

    #[test]
    fn other_commands_are_untouched() {
        for line in [
            "gadgetctl list -a",
            "gadgetctl --address run list",
            "gadgetctl image rm run",
        ] {
            assert_eq!(reordered(line), line);
        }
    }
}
