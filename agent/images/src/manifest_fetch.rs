//! Fetching a manifest or index from a registry with a size limit applied
//! while it arrives (a 2 GiB "manifest" once drove the agent to 4.2 GB):
//! streamed, and cut off past the limit.

use oci_client::Reference;
use reqwest::{Method, StatusCode, header};

use super::error::{ImageError, Result};
use super::registry_http::{MANIFEST_TIMEOUT, Session, read_capped, send_error};

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
    session: &Session<'_>,
    r: &Reference,
    accept: &[&str],
    max: u64,
) -> Result<Fetched> {
    fetch_if_present(session, r, accept, max, " (no such image or tag)")
        .await?
        .ok_or_else(|| not_found_error(session, r))
}

fn not_found_error(session: &Session<'_>, r: &Reference) -> ImageError {
    super::registry_http::failed(
        session.registry(),
        format!("{r}: no such image or tag in the registry"),
    )
}

/// Like [`fetch`], but None when the registry has no such manifest (404),
/// or, when `not_found` is not empty, an error ending with it.
pub async fn fetch_if_present(
    session: &Session<'_>,
    r: &Reference,
    accept: &[&str],
    max: u64,
    not_found: &str,
) -> Result<Option<Fetched>> {
    let key = r.digest().or(r.tag()).unwrap_or("latest");
    let url = session.url(&format!("manifests/{key}"));
    let req = session
        .request(Method::GET, &url)
        .header(header::ACCEPT, accept.join(", "))
        .timeout(MANIFEST_TIMEOUT);
    let mut ok = vec![StatusCode::OK];
    if not_found.is_empty() {
        ok.push(StatusCode::NOT_FOUND);
    }
    let resp = session.send(req, &url, &ok, not_found).await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let bytes = read_capped(
        resp,
        max,
        |e| match e.is_timeout() {
            true => send_error(session.registry(), e),
            false => super::registry_http::failed(
                session.registry(),
                format!("download of {url} broke off: {e}"),
            ),
        },
        |n| {
            super::registry_http::failed(
                session.registry(),
                format!("{r}: the manifest is {n} bytes; at most {max} are accepted"),
            )
        },
    )
    .await?;
    Ok(Some(Fetched {
        bytes,
        content_type,
    }))
}
