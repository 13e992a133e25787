//! Every request gadgetd makes to a registry, with every response body it
//! reads bounded before it is buffered. A registry is not trusted: its
//! token endpoint, manifests, error bodies and blobs can be any size and
//! never end, so each read has a byte limit (and the small ones a time
//! limit), and whatever it says reaches messages only as printable ASCII.
//!
//! A [`Session`] is one authorized conversation with one repository: the
//! registry's `/v2/` challenge is answered once (a bearer token fetched
//! from the realm it names, or HTTP Basic), then manifests and blobs are
//! read and written with that authorization.

use std::time::Duration;

use base64::Engine as _;
use oci_client::Reference;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::error::{ImageError, Result};

/// Largest token response accepted from a registry's token endpoint (real
/// ones are a few KiB: a JWT and its expiry).
pub const MAX_TOKEN_RESPONSE_BYTES: u64 = 64 << 10;
/// How much of an error body is read for the registry's message.
pub const MAX_ERROR_BODY_BYTES: usize = 4096;
/// Time limit of reading an error body (a body that drips is not waited
/// for: the status already says what went wrong).
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of a whole token exchange or `/v2/` probe.
pub const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of a whole manifest read.
pub const MANIFEST_TIMEOUT: Duration = Duration::from_secs(120);

/// What a session may do in its repository (the token scope asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// An authorized conversation with one registry about one repository.
pub struct Session<'a> {
    http: &'a reqwest::Client,
    /// The registry as the user wrote it (for messages).
    registry: String,
    /// `scheme://host`.
    origin: String,
    repository: String,
    authorization: Option<HeaderValue>,
    /// Whether the registry asked for authorization (401 on `/v2/`).
    challenged: bool,
}

/// The error a registry request ends with: `registry R: reason`.
pub fn failed(registry: &str, reason: String) -> ImageError {
    ImageError::Registry {
        registry: registry.to_string(),
        reason,
    }
}

/// "cannot talk to the registry", with the causes reqwest chains and a hint
/// when nothing answered.
pub fn send_error(registry: &str, e: &reqwest::Error) -> ImageError {
    let mut msg = format!("cannot talk to the registry: {}", chain(e));
    if e.is_connect() {
        msg.push_str(" (is it running and reachable? plain HTTP is used only for loopback registries and those given to gadgetd --insecure-registry)");
    }
    if e.is_timeout() {
        msg.push_str(" (it did not answer in time)");
    }
    failed(registry, msg)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Reads `resp`'s body, refusing it as soon as it is known to exceed `max`
/// bytes (by `Content-Length`, or while it arrives). `too_large` gets what
/// is known of the size ("N" or "more than N") and makes the error.
pub async fn read_capped(
    mut resp: Response,
    max: u64,
    broke_off: impl Fn(&reqwest::Error) -> ImageError,
    too_large: impl Fn(String) -> ImageError,
) -> Result<Vec<u8>> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(too_large(len.to_string()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| broke_off(&e))? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large(format!("more than {max}")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The messages of an OCI error body (`{"errors":[{"message":...}]}`),
/// read up to [`MAX_ERROR_BODY_BYTES`], as `: message; message`, at most
/// 200 characters, anything but printable ASCII replaced by `?`.
pub async fn registry_says(resp: &mut Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match tokio::time::timeout(ERROR_BODY_TIMEOUT, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                body.extend_from_slice(&c[..c.len().min(MAX_ERROR_BODY_BYTES - body.len())])
            }
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
    let text = printable(
        &errors
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    );
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}

/// At most 200 characters of `s`, anything but printable ASCII as `?`.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// What a `/v2/` challenge asks for.
enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
    None,
}

fn parse_challenge(value: Option<&HeaderValue>) -> Challenge {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return Challenge::None;
    };
    let mut basic = false;
    for c in http_auth::ChallengeParser::new(text).flatten() {
        if c.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Challenge::Bearer {
                    realm,
                    service: param("service"),
                };
            }
        } else if c.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    if basic {
        Challenge::Basic
    } else {
        Challenge::None
    }
}

fn basic_header(user: &str, password: &str) -> Result<HeaderValue> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| ImageError::Invalid("credentials that cannot be sent in a header".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

impl<'a> Session<'a> {
    /// Answers the registry's `/v2/` challenge for `r`'s repository with
    /// `credentials` (user, password) when given: a bearer token from the
    /// realm it names (scope pull, or pull and push), HTTP Basic, or nothing.
    ///
    /// Errors: the registry unreachable; the token endpoint refusing the
    /// credentials (401/403), failing, or sending a response over
    /// [`MAX_TOKEN_RESPONSE_BYTES`] or without a token.
    pub async fn open(
        http: &'a reqwest::Client,
        plain_http: bool,
        r: &Reference,
        credentials: Option<(&str, &str)>,
        access: Access,
    ) -> Result<Session<'a>> {
        let registry = r.registry().to_string();
        let scheme = if plain_http { "http" } else { "https" };
        let origin = format!("{scheme}://{}", r.resolve_registry());
        let probe = http
            .get(format!("{origin}/v2/"))
            .timeout(SMALL_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| send_error(&registry, &e))?;
        // The probe's body is never read: only its status and challenge count.
        let challenged = probe.status() == StatusCode::UNAUTHORIZED;
        let challenge = if challenged {
            parse_challenge(probe.headers().get(header::WWW_AUTHENTICATE))
        } else {
            Challenge::None
        };
        drop(probe);
        let mut session = Session {
            http,
            registry,
            origin,
            repository: r.repository().to_string(),
            authorization: None,
            challenged,
        };
        session.authorization = match challenge {
            Challenge::Bearer { realm, service } => {
                let token = session
                    .fetch_token(&realm, service.as_deref(), credentials, access)
                    .await?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    failed(
                        &session.registry,
                        "its token endpoint sent a token that cannot be sent back in a header"
                            .into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            Challenge::Basic | Challenge::None => match credentials {
                Some((u, p)) if session.challenged => Some(basic_header(u, p)?),
                _ => None,
            },
        };
        Ok(session)
    }

    /// The registry as the user wrote it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Whether the registry asked for authorization on `/v2/`.
    pub fn challenged(&self) -> bool {
        self.challenged
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        credentials: Option<(&str, &str)>,
        access: Access,
    ) -> Result<String> {
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", self.repository),
            Access::Push => format!("repository:{}:pull,push", self.repository),
        };
        let mut query = vec![("scope", scope.as_str())];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let realm_shown = printable(realm);
        let mut req = self
            .http
            .get(realm)
            .query(&query)
            .timeout(SMALL_REQUEST_TIMEOUT);
        if let Some((u, p)) = credentials {
            req = req.basic_auth(u, Some(p));
        }
        let mut resp = req.send().await.map_err(|e| {
            failed(
                &self.registry,
                format!(
                    "cannot reach its token endpoint {realm_shown}: {}",
                    chain(&e)
                ),
            )
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let said = registry_says(&mut resp).await;
            return Err(ImageError::CredentialsRejected {
                registry: self.registry.clone(),
                reason: format!(
                    "its token endpoint {realm_shown} refused the credentials (HTTP {status}{said}); authentication required or credentials rejected (run `gadgetctl login {}`)",
                    self.registry
                ),
            });
        }
        if !status.is_success() {
            let said = registry_says(&mut resp).await;
            return Err(failed(
                &self.registry,
                format!("its token endpoint {realm_shown} failed: HTTP {status}{said}"),
            ));
        }
        let body = read_capped(
            resp,
            MAX_TOKEN_RESPONSE_BYTES,
            |e| {
                failed(
                    &self.registry,
                    format!(
                        "the token response from {realm_shown} broke off: {}",
                        chain(e)
                    ),
                )
            },
            |n| {
                failed(
                    &self.registry,
                    format!(
                        "its token endpoint {realm_shown} sent a response of {n} bytes; at most {MAX_TOKEN_RESPONSE_BYTES} are accepted"
                    ),
                )
            },
        )
        .await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            failed(
                &self.registry,
                format!("its token endpoint {realm_shown} sent a malformed response: {e}"),
            )
        })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                failed(
                    &self.registry,
                    format!("its token endpoint {realm_shown} sent no token"),
                )
            })
    }

    /// `scheme://host/v2/REPOSITORY/` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.origin, self.repository)
    }

    /// A request to `url` carrying the session's authorization.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.authorization {
            Some(a) => req.header(header::AUTHORIZATION, a.clone()),
            None => req,
        }
    }

    /// Sends `req`; a status other than `ok` becomes an error naming `what`
    /// and the status, with the registry's message (read bounded) and what
    /// to do for 401/403, and `not_found` appended for 404.
    pub async fn send(
        &self,
        req: RequestBuilder,
        what: &str,
        ok: &[StatusCode],
        not_found: &str,
    ) -> Result<Response> {
        let mut resp = req
            .send()
            .await
            .map_err(|e| send_error(&self.registry, &e))?;
        let status = resp.status();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let said = registry_says(&mut resp).await;
        let hint = match status.as_u16() {
            401 | 403 => format!(
                ": authentication required or credentials rejected (run `gadgetctl login {}`)",
                self.registry
            ),
            404 => not_found.to_string(),
            _ => String::new(),
        };
        Err(failed(
            &self.registry,
            format!("{what}: HTTP {status}{said}{hint}"),
        ))
    }

    /// Checks the session's authorization on `/v2/`: false when the
    /// registry answers 401 (the credentials are wrong).
    pub async fn authorized(&self) -> Result<bool> {
        let resp = self
            .request(Method::GET, &format!("{}/v2/", self.origin))
            .timeout(SMALL_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| send_error(&self.registry, &e))?;
        Ok(resp.status() != StatusCode::UNAUTHORIZED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(text: &str) -> Challenge {
        parse_challenge(Some(&HeaderValue::from_str(text).unwrap()))
    }

    #[test]
    fn a_bearer_challenge_gives_its_realm_and_service() {
        match challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        ) {
            Challenge::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("registry.example"));
            }
            _ => panic!("not a bearer challenge"),
        }
        // Scheme names are case-insensitive; a Basic one before it is passed over.
        match challenge(r#"Basic realm="x", bearer realm="https://a/t""#) {
            Challenge::Bearer { realm, service } => {
                assert_eq!(realm, "https://a/t");
                assert_eq!(service, None);
            }
            _ => panic!("not a bearer challenge"),
        }
    }

    #[test]
    fn basic_missing_realm_and_garbage_are_not_bearer() {
        assert!(matches!(
            challenge(r#"Basic realm="Registry""#),
            Challenge::Basic
        ));
        assert!(matches!(
            challenge(r#"Bearer service="x""#),
            Challenge::None
        ));
        assert!(matches!(challenge("Negotiate"), Challenge::None));
        assert!(matches!(challenge(",,,=\""), Challenge::None));
        assert!(matches!(parse_challenge(None), Challenge::None));
    }

    #[test]
    fn registry_text_reaches_messages_as_printable_ascii_only() {
        assert_eq!(printable("ok: fine"), "ok: fine");
        assert_eq!(printable("a\x1b[31mb\nc\u{202e}d"), "a?[31mb?c?d");
        assert_eq!(printable(&"x".repeat(500)).len(), 200);
    }
}
