//! Gadget parameters as typed flags: `gadgetctl run FILE --NAME VALUE`.
//! The agent describes the gadget (its `const volatile` globals, types,
//! defaults and docs); flags after the gadget are matched against that, and
//! `gadgetctl run FILE --help` lists them.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use gadgetd_dbus::gadgets::{Description, GadgetsProxy, ParamInfo};

#[derive(clap::Args, Debug, Default)]
pub struct ParamArgs {
    /// Gadget parameters: `--NAME VALUE` (or `--NAME=VALUE`; a bare `--NAME`
    /// for booleans). `gadgetctl run FILE --help` lists them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--PARAM VALUE",
        add = clap_complete::ArgValueCompleter::new(crate::complete::gadget_params)
    )]
    pub gadget_flags: Vec<String>,
}

/// Asks the agent what `object` is.
pub async fn describe(
    conn: &zbus::Connection,
    object: &Path,
    definition: &str,
) -> Result<Description> {
    let file =
        std::fs::File::open(object).with_context(|| format!("cannot open {}", object.display()))?;
    let proxy = GadgetsProxy::builder(conn)
        .destination(gadgetd_dbus::names::BUS_NAME)?
        .build()
        .await?;
    let json = proxy
        .describe_object(
            zbus::zvariant::Fd::from(file.as_fd()),
            definition,
            HashMap::new(),
        )
        .await?;
    Ok(serde_json::from_str(&json)?)
}

/// Describes a local image from `Images.Inspect` (its params and fields).
pub async fn describe_image(address: Option<&str>, image: &str) -> Result<Description> {
    let proxy = crate::images::images_proxy(address).await?;
    let v: serde_json::Value = serde_json::from_str(&proxy.inspect(image).await?)?;
    if let Some(err) = v["error"].as_str() {
        bail!("image {image} cannot run here: {err}");
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let params = v["params"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| ParamInfo {
                    name: text(&p["name"]),
                    key: p["key"]
                        .as_str()
                        .map_or_else(|| text(&p["name"]), str::to_string),
                    kind: param_type(&p["kind"]),
                    default: text(&p["default"]),
                    description: text(&p["description"]),
                    possible_values: p["possible_values"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Description {
        name: image.to_string(),
        kind: "image".into(),
        params,
        fields: serde_json::from_value(v["fields"].clone()).unwrap_or_default(),
        datasources: serde_json::from_value(v["datasources"].clone()).unwrap_or_default(),
        ..Description::default()
    })
}

/// The agent's `ParamKind` JSON (`{"type":"int","size":4,"signed":true}`) as users read it.
fn param_type(kind: &serde_json::Value) -> String {
    let size = kind["size"].as_u64().unwrap_or(0);
    match kind["type"].as_str().unwrap_or("") {
        "int" if kind["signed"].as_bool() == Some(true) => format!("int{}", size * 8),
        "int" => format!("uint{}", size * 8),
        "string" => format!(
            "string (up to {} bytes)",
            kind["len"].as_u64().unwrap_or(1).saturating_sub(1)
        ),
        other => other.to_string(),
    }
}

/// Matches `--NAME VALUE` flags against the gadget's parameters.
pub fn parse_flags(desc: &Description, flags: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        let token = &flags[i];
        let Some(body) = token.strip_prefix("--") else {
            bail!(
                "unexpected `{token}` after the gadget: gadget parameters are `--NAME VALUE`{}",
                hint(desc)
            );
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(param) = desc.params.iter().find(|p| p.name == name || p.key == name) else {
            bail!(
                "`--{name}` is neither an option of `gadgetctl run` nor a parameter of gadget {}{} \
                 (`gadgetctl run {} --help` lists both; options and parameters may come in any order)",
                desc.name,
                hint(desc),
                desc.name
            );
        };
        let value = match inline {
            Some(v) => v,
            None if param.kind == "bool"
                && flags.get(i + 1).is_none_or(|n| n.starts_with("--")) =>
            {
                "true".into()
            }
            None => {
                i += 1;
                flags
                    .get(i)
                    .cloned()
                    .with_context(|| format!("`--{name}` needs a value ({})", param.kind))?
            }
        };
        out.push((param.name.clone(), value));
        i += 1;
    }
    Ok(out)
}

fn hint(desc: &Description) -> String {
    if desc.params.is_empty() {
        "; it has no parameters".into()
    } else {
        format!(
            "; its parameters: {}",
            desc.params
                .iter()
                .map(|p| format!("--{}", p.name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The gadget's own part of `gadgetctl run FILE --help`.
pub fn render_help(desc: &Description) -> String {
    let mut s = String::new();
    s.push_str(&format!("\nGadget {} ({})", desc.name, desc.kind));
    if !desc.description.is_empty() {
        s.push_str(&format!(": {}", desc.description));
    }
    s.push('\n');
    if !desc.documentation.is_empty() {
        s.push('\n');
        for l in desc.documentation.trim_end().lines() {
            s.push_str(&format!("  {l}\n"));
        }
    }
    s.push_str("\nGadget parameters:\n");
    if desc.params.is_empty() {
        s.push_str("  (none)\n");
    }
    for p in &desc.params {
        s.push_str(&format!("  --{} <{}>\n", p.name, p.kind));
        if !p.description.is_empty() {
            s.push_str(&format!("          {}\n", p.description));
        }
        if !p.possible_values.is_empty() {
            s.push_str(&format!(
                "          [possible values: {}]\n",
                p.possible_values.join(", ")
            ));
        }
        s.push_str(&format!("          [default: {}]\n", p.default));
    }
    if desc.datasources.len() > 1 {
        // Several sources: each with its fields (`--fields SOURCE:FIELD`).
        for d in &desc.datasources {
            s.push_str(&format!(
                "\nFields of data source {name} ({}; --fields {name}:FIELD):\n",
                crate::escape::terminal(&d.kind),
                name = crate::escape::terminal(&d.name),
            ));
            field_lines(&mut s, &d.fields);
        }
        return s;
    }
    s.push_str("\nFields:\n");
    field_lines(&mut s, &desc.fields);
    s
}

/// One help line per field: name, type, description (the gadget's text,
/// escaped for the terminal).
fn field_lines(s: &mut String, fields: &[gadgetd_dbus::stream::Field]) {
    use crate::escape::terminal;
    for f in fields {
        let doc = if f.description.is_empty() {
            String::new()
        } else {
            format!("  {}", terminal(&f.description))
        };
        let line = format!("  {:<20} {:<12}{doc}", terminal(&f.name), terminal(&f.kind));
        s.push_str(line.trim_end());
        s.push('\n');
    }
}

/// `gadgetctl run FILE [...] --help`: clap's help of `run` plus the gadget's
/// parameters, fetched from the agent. `None` when the command line is not that.
pub async fn gadget_help(mut cmd: clap::Command) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let run_at = args.iter().position(|a| a == "run")?;
    let rest = &args[run_at + 1..];
    if !rest.iter().any(|a| a == "--help" || a == "-h") {
        return None;
    }
    // The gadget: an object file, else an image name (the first word that
    // does not follow an option, which could be that option's value).
    let file = rest
        .iter()
        .find(|a| !a.starts_with('-') && Path::new(a).is_file());
    let image = || {
        args[run_at..]
            .windows(2)
            .find(|w| !w[1].starts_with('-') && (w[0] == "run" || !w[0].starts_with('-')))
            .map(|w| &w[1])
    };
    let object = file.or_else(image)?;
    let address =
        address_arg(&args).or_else(|| std::env::var(gadgetd_dbus::names::ADDRESS_ENV).ok());
    let help = cmd
        .find_subcommand_mut("run")
        .map(|c| c.render_help().to_string())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{help}");
    match async {
        if file.is_none() {
            // An image: it must be local (`gadgetctl pull IMAGE`).
            return describe_image(address.as_deref(), object).await;
        }
        let definition = default_definition(rest, Path::new(object));
        let (conn, _) =
            gadgetd_dbus::connect(address.as_deref().map(gadgetd_dbus::Endpoint::parse)).await?;
        describe(&conn, Path::new(object), &definition).await
    }
    .await
    {
        Ok(desc) => {
            let _ = write!(out, "{}", render_help(&desc));
            Some(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = out.flush();
            eprintln!("gadgetctl: cannot describe {object}: {e:#}");
            Some(ExitCode::FAILURE)
        }
    }
}

pub(crate) fn address_arg(args: &[String]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == "--address" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--address=").map(str::to_string)
        }
    })
}

fn default_definition(rest: &[String], object: &Path) -> String {
    let explicit = rest
        .iter()
        .position(|a| a == "--definition")
        .and_then(|i| rest.get(i + 1))
        .map(Path::new);
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| object.with_extension("yaml"));
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadgetd_dbus::gadgets::ParamInfo;

    fn desc() -> Description {
        let p = |name: &str, kind: &str| ParamInfo {
            name: name.into(),
            key: name.into(),
            kind: kind.into(),
            default: "0".into(),
            ..ParamInfo::default()
        };
        Description {
            name: "g".into(),
            params: vec![p("pid", "int32"), p("failed", "bool")],
            ..Description::default()
        }
    }

    #[test]
    fn flags_become_params() {
        let f = |v: &[&str]| {
            parse_flags(
                &desc(),
                &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            f(&["--pid", "7", "--failed"]).unwrap(),
            [("pid".into(), "7".into()), ("failed".into(), "true".into())]
        );
        assert_eq!(
            f(&["--pid=-1", "--failed", "false"]).unwrap(),
            [
                ("pid".into(), "-1".into()),
                ("failed".into(), "false".into())
            ]
        );
        let err = f(&["--nope", "1"]).unwrap_err().to_string();
        assert!(
            err.contains(
                "`--nope` is neither an option of `gadgetctl run` nor a parameter of gadget g; \
                 its parameters: --pid, --failed"
            ),
            "{err}"
        );
        assert!(
            f(&["--pid"])
                .unwrap_err()
                .to_string()
                .contains("needs a value (int32)")
        );
    }
}
