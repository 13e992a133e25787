//! `gadgetctl image sign|verify|generate-key-pair`: cosign-compatible image
//! signatures. Private keys stay here (the agent gets the payload's
//! signature, never the key); verification and the run policy are the
//! agent's (`org.gadgetd.Agent1.Signatures`).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use gadgetd_dbus::signatures::signature_options;
use gadgetd_dbus::{Endpoint, SignaturesProxy};
use gadgetd_images::keys::{PublicKey, SigningKey};
use zbus::zvariant::Value;

/// Environment variable holding the password of cosign keys (cosign's name).
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Private key: a cosign key (password in COSIGN_PASSWORD) or a PEM
    /// PKCS#8 ECDSA P-256 / Ed25519 key.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Keep the signature in the local store only (default: also push it to
    /// the image's registry, as cosign does).
    #[arg(long)]
    pub no_upload: bool,
    /// A local image: [REGISTRY/]NAME[:TAG] or a digest.
    pub image: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Public key (PEM, e.g. cosign.pub); repeatable. Default: the keys the
    /// agent's run policy trusts for the image.
    #[arg(long, value_name = "PUB")]
    pub key: Vec<PathBuf>,
    /// Print the agent's verdict as JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: VerifyFormat,
    /// A local image: [REGISTRY/]NAME[:TAG] or a digest (pull it first to
    /// check a registry's signatures).
    pub image: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct KeyPairArgs {
    /// Write PREFIX.key (encrypted with COSIGN_PASSWORD) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: PathBuf,
}

async fn proxy(address: Option<&str>) -> Result<SignaturesProxy<'static>> {
    let (conn, endpoint) = gadgetd_dbus::connect(address.map(Endpoint::parse)).await?;
    let builder = SignaturesProxy::builder(&conn);
    let builder = if endpoint.is_bus() {
        builder
    } else {
        builder.destination(gadgetd_dbus::names::BUS_NAME)?
    };
    Ok(builder.build().await?)
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > 64 << 10 {
        bail!(
            "{}: {} bytes is too large for a key",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a signing key; the password comes from COSIGN_PASSWORD.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = read_key_file(path)?;
    let password = std::env::var_os(PASSWORD_ENV).map(|p| p.into_encoded_bytes());
    SigningKey::from_pem(&pem, password.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    PublicKey::from_pem(&read_key_file(path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub async fn sign(address: Option<&str>, a: SignArgs) -> Result<ExitCode> {
    let key = load_signing_key(&a.key)?;
    let proxy = proxy(address).await?;
    let (reference, digest, payload) = proxy.payload(&a.image).await?;
    let signature = key.sign(&payload);
    // Never hand the agent a signature that does not verify.
    key.public_key()
        .verify(&payload, &signature)
        .map_err(|e| anyhow::anyhow!("the new signature does not verify: {e}"))?;
    let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
    opts.insert(signature_options::UPLOAD, Value::from(!a.no_upload));
    let stored = proxy
        .attach(&a.image, &payload, &signature, opts)
        .await
        .with_context(|| {
            if a.no_upload {
                "cannot store the signature".to_string()
            } else {
                "cannot store or upload the signature (--no-upload keeps it local)".to_string()
            }
        })?;
    println!(
        "signed {} ({digest}) with {} key {}",
        reference.escape_debug(),
        key.public_key().algorithm(),
        key.public_key().fingerprint()
    );
    println!(
        "signatures: {}{}",
        stored.escape_debug(),
        if a.no_upload { "" } else { " (uploaded)" }
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(address: Option<&str>, a: VerifyArgs) -> Result<ExitCode> {
    let mut pems = Vec::new();
    for path in &a.key {
        let key = load_public_key(path)?;
        pems.push((path.display().to_string(), key.to_pem()));
    }
    let json = proxy(address)
        .await?
        .verify(&a.image, pems.iter().map(|(_, p)| p.as_str()).collect())
        .await?;
    let v: serde_json::Value =
        serde_json::from_str(&json).context("malformed verdict from gadgetd")?;
    let verified = v["verified"].as_array().cloned().unwrap_or_default();
    if a.output == VerifyFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if verified.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").escape_debug().to_string();
    // The agent labels keys `key N` in the order given; name the files instead.
    let label = |l: &str| {
        l.strip_prefix("key ")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| pems.get(n.wrapping_sub(1)))
            .map(|(path, _)| path.clone())
            .unwrap_or_else(|| l.to_string())
    };
    let (reference, digest) = (text(&v["reference"]), text(&v["digest"]));
    if verified.is_empty() {
        eprintln!("gadgetctl: {reference} ({digest}): {}", text(&v["refusal"]));
        return Ok(ExitCode::FAILURE);
    }
    println!("verified {reference} ({digest})");
    for s in &verified {
        println!(
            "  signed by {} ({}) for {}",
            label(&text(&s["key"])).escape_debug(),
            text(&s["fingerprint"]),
            text(&s["dockerReference"])
        );
    }
    for p in v["problems"].as_array().into_iter().flatten() {
        println!("  also: {}", text(p));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a new ECDSA P-256 key pair in cosign's format.
pub fn generate_key_pair(a: KeyPairArgs) -> Result<ExitCode> {
    let password = match std::env::var_os(PASSWORD_ENV) {
        Some(p) => p.into_encoded_bytes(),
        None => bail!("set {PASSWORD_ENV} to the password for the new key (empty for none)"),
    };
    let prefix = a.output_key_prefix.display().to_string();
    let (key_path, pub_path) = (
        PathBuf::from(format!("{prefix}.key")),
        PathBuf::from(format!("{prefix}.pub")),
    );
    let key = SigningKey::generate_p256();
    for (path, text, mode) in [
        (&key_path, key.to_cosign_pem(&password), 0o600),
        (&pub_path, key.public_key().to_pem(), 0o644),
    ] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "private key written to {}, public key to {}",
        key_path.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
