//! `stratus keys`: the key files a site hands to its EHR team for SMART Backend Services.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use stratus_smart::keys::{self, Alg, SigningKey};

use crate::exit::Outcome;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key pair for a SMART Backend Services client.
    ///
    /// Writes a JWKS holding the public and the private key under one random kid, readable
    /// by you only (mode 0600). Keep it secret; register only its public part (stratus keys
    /// public) with the EHR. SMART requires clients to support both RS384 and ES384; ask
    /// the EHR team which one they take.
    ///
    /// Example: stratus keys generate --alg ES384 --out client.jwks
    Generate(GenerateArgs),
    /// Print the public JWKS of a key file: the part to register with an EHR.
    ///
    /// Takes a JWKS, a single JWK, or a PEM private key. Private members (d, p, q, ...) are
    /// removed, key_ops becomes ["verify"], and the public and private halves of one key
    /// become one public key.
    ///
    /// Example: stratus keys public client.jwks > public.jwks
    Public(PublicArgs),
    /// Turn a PEM private key into a JWKS like `generate` writes.
    ///
    /// Reads PKCS#8 ("PRIVATE KEY", RSA or P-384), PKCS#1 ("RSA PRIVATE KEY") and SEC1
    /// ("EC PRIVATE KEY", P-384, as openssl ecparam writes it). The kid is the key's
    /// RFC 7638 thumbprint, so converting the same key twice gives the same file.
    ///
    /// Example: stratus keys convert key.pem --out client.jwks
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// RS384 (RSA) or ES384 (ECDSA P-384).
    #[arg(long, default_value = "RS384", value_parser = parse_alg)]
    pub alg: Alg,
    /// RSA modulus size: 2048, 3072 or 4096 (ignored for ES384).
    #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
    pub bits: usize,
    /// The key id (default: 32 random hex characters).
    #[arg(long)]
    pub kid: Option<String>,
    /// Where to write the JWKS (created with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PublicArgs {
    /// A JWKS, JWK or PEM private key file.
    pub file: PathBuf,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The PEM private key file.
    pub file: PathBuf,
    /// Choose the kid instead of the thumbprint.
    #[arg(long)]
    pub kid: Option<String>,
    /// Fail unless the key is of this algorithm (RS384 or ES384).
    #[arg(long, value_parser = parse_alg)]
    pub alg: Option<Alg>,
    /// Write to FILE (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_bits(s: &str) -> Result<usize, String> {
    match s.trim() {
        "2048" => Ok(2048),
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        _ => Err(format!("'{s}' is not 2048, 3072 or 4096")),
    }
}

fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse().map_err(|e: keys::KeyError| e.to_string())
}

pub fn run(cmd: &KeysCommand) -> anyhow::Result<Outcome> {
    match cmd {
        KeysCommand::Generate(a) => generate(a),
        KeysCommand::Public(a) => public(a),
        KeysCommand::Convert(a) => convert(a),
    }
}

fn generate(a: &GenerateArgs) -> anyhow::Result<Outcome> {
    check_out(&a.out, a.force)?;
    let key = match &a.kid {
        Some(kid) => SigningKey::generate_with_kid(a.alg, a.bits, kid)?,
        None => SigningKey::generate(a.alg, a.bits)?,
    };
    write_private(&a.out, &key.to_jwks(), a.force)?;
    eprintln!(
        "wrote {} ({} key, kid {}), readable by you only",
        a.out.display(),
        key.alg(),
        key.kid()
    );
    eprintln!(
        "next: register the public part with the EHR: stratus keys public {} > public.jwks",
        a.out.display()
    );
    Ok(Outcome::Success)
}

fn public(a: &PublicArgs) -> anyhow::Result<Outcome> {
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let jwks = if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
    {
        let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| anyhow!("{}: not a key file: not valid JSON ({e})", a.file.display()))?;
        keys::public_jwks(&v).map_err(|e| anyhow!("{}: {e}", a.file.display()))?
    } else {
        // A PEM key, or not a key at all: the library says which, naming the file.
        SigningKey::load(&a.file, None)?.public_jwks()
    };
    let out = pretty(&jwks)?;
    match &a.out {
        Some(path) => {
            let mut f = stratus_fhir::writer::AtomicFile::create(path)?;
            f.write_all(out.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.commit()?;
        }
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    Ok(Outcome::Success)
}

fn convert(a: &ConvertArgs) -> anyhow::Result<Outcome> {
    if let Some(out) = &a.out {
        check_out(out, a.force)?;
    }
    let mut key = SigningKey::load(&a.file, None)?;
    if let Some(alg) = a.alg
        && key.alg() != alg
    {
        bail!("{} holds an {} key, not {alg}", a.file.display(), key.alg());
    }
    if let Some(kid) = &a.kid {
        key.set_kid(kid)?;
    }
    match &a.out {
        Some(path) => {
            write_private(path, &key.to_jwks(), a.force)?;
            eprintln!(
                "wrote {} ({} key, kid {}), readable by you only",
                path.display(),
                key.alg(),
                key.kid()
            );
        }
        None => std::io::stdout()
            .lock()
            .write_all(pretty(&key.to_jwks())?.as_bytes())?,
    }
    Ok(Outcome::Success)
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// Fails early, before any key is made, if `path` cannot be written as asked.
fn check_out(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{} is a folder; give the key file's name", path.display());
    }
    if path.exists() && !force {
        bail!(
            "{} already exists; use --force to replace it (the key in it would be lost)",
            path.display()
        );
    }
    Ok(())
}

/// Writes a file that holds a private key: created 0600 under a temporary name beside
/// the destination, synced, then moved into place, so neither a half-written key nor a
/// moment of wider permissions ever exists. Without `force` the move is a hard link,
/// which fails rather than replace a file that appeared since [`check_out`].
fn write_private(path: &Path, jwks: &serde_json::Value, force: bool) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        keys::random_hex16()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = (|| -> anyhow::Result<()> {
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(pretty(jwks)?.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        if force {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(());
        }
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} already exists; use --force to replace it (the key in it would be lost)",
                path.display()
            ),
            // Filesystems without hard links: the check in `check_out` has to do.
            Err(_) => std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display())),
        }
    })();
    // After a hard link or a failure the temporary name is left over; after a rename it
    // is gone already.
    let _ = std::fs::remove_file(&tmp);
    result
}
