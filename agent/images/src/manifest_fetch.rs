//! Fetching a manifest or index from a registry with a size limit applied
//! while it arrives: oci-client buffers a whole response before anyone can
//! look at its size (a 2 GiB "manifest" drove the agent to 4.2 GB), so
//! manifests are fetched here, streamed, and cut off past the limit.
//! Authentication still comes from oci-client (its token exchange).

use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::error::{ImageError, Result};

/// A manifest's bytes and the media type the registry gave it.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

/// GETs `r`'s manifest (by digest when `r` has one, else by tag), reading
/// at most `max` bytes; `accept` lists the media types asked for.
///
/// Errors: the registry's status (with what to do for 401/404), a
/// `Content-Length` above `max` (nothing is read), or a body that grows
/// past `max` (refused as soon as it does).
pub async fn fetch(
    client: &Client,
    http: &reqwest::Client,
    plain_http: bool,
    r: &Reference,
    auth: &RegistryAuth,
    accept: &[&str],
    max: u64,
) -> Result<Fetched> {
    let registry = r.resolve_registry().to_string();
    let failed = |reason: String| ImageError::Registry {
        registry: r.registry().to_string(),
        reason,
    };
    let token = client
        .auth(r, auth, RegistryOperation::Pull)
        .await
        .map_err(|e| failed(format!("authentication failed: {e}")))?;
    let scheme = if plain_http { "http" } else { "https" };
    let key = r.digest().or(r.tag()).unwrap_or("latest");
    let url = format!(
        "{scheme}://{registry}/v2/{}/manifests/{key}",
        r.repository()
    );
    let mut req = http
        .get(&url)
        .header(reqwest::header::ACCEPT, accept.join(", "));
    req = match (&token, auth) {
        (Some(t), _) => req.bearer_auth(t),
        (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
        (None, _) => req,
    };
    let mut resp = req
        .send()
        .await
        .map_err(|e| failed(format!("cannot fetch {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => {
                ": authentication required or credentials rejected (log in with `gadgetctl login`)"
            }
            404 => " (no such image or tag)",
            _ => "",
        };
        let said = registry_says(&mut resp).await;
        return Err(failed(format!("{url}: HTTP {status}{said}{hint}")));
    }
    let too_large = |n: String| {
        ImageError::Invalid(format!(
            "{r}: the manifest is {n} bytes; at most {max} are accepted"
        ))
    };
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(too_large(len.to_string()));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| failed(format!("download of {url} broke off: {e}")))?
    {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large(format!("more than {max}")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        bytes,
        content_type,
    })
}

/// The messages of an OCI error body (`{"errors":[{"message":...}]}`),
/// read up to 4 KiB, as `: message; message`, with anything but printable
/// ASCII replaced (the registry is not trusted to write to terminals).
async fn registry_says(resp: &mut reqwest::Response) -> String {
    const MAX: usize = 4096;
    let mut body = Vec::new();
    while body.len() < MAX {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(MAX - body.len())]),
            _ => break,
        }
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Message>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        #[serde(default)]
        message: String,
    }
    let Ok(errors) = serde_json::from_slice::<Errors>(&body) else {
        return String::new();
    };
    let text: String = errors
        .errors
        .iter()
        .map(|e| e.message.as_str())
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}
