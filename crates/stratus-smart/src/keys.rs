//! Key pairs for SMART Backend Services, in the JWKS shapes EHR teams and the SMART tools
//! exchange: `{"keys": [public, private]}` under one `kid`, each JWK with `alg`, `kid`,
//! `key_ops` and `ext`, and no `use` (as in the SMART samples; RFC 7517 discourages `use`
//! beside `key_ops`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use jwt_simple::JWTError;
use jwt_simple::prelude::*;
use p384::pkcs8::{ObjectIdentifier, PrivateKeyInfoRef};
use serde_json::{Value, json};

/// The two algorithms SMART Backend Services requires clients to support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs384,
    Es384,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs384 => "RS384",
            Alg::Es384 => "ES384",
        }
    }

    /// The JWK `kty` that goes with the algorithm.
    pub fn kty(self) -> &'static str {
        match self {
            Alg::Rs384 => "RSA",
            Alg::Es384 => "EC",
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Alg, KeyError> {
        match s.to_ascii_uppercase().as_str() {
            "RS384" => Ok(Alg::Rs384),
            "ES384" => Ok(Alg::Es384),
            _ => Err(KeyError::UnsupportedAlg(s.to_owned())),
        }
    }
}

/// Why a key could not be made, read or used. The messages are meant for the person who
/// handed us the file, so they say what was found and what would work instead.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported alg {0}: use RS384 or ES384")]
    UnsupportedAlg(String),
    #[error("{0}: use an RSA key (RS384) or an EC key on curve P-384 (ES384)")]
    UnsupportedKeyType(String),
    #[error("RSA keys must be 2048, 3072 or 4096 bits, not {0}")]
    RsaBits(usize),
    #[error("no private key (a JWK with \"d\") in the JWKS")]
    NoPrivateKey,
    #[error("the JWKS holds {0} private keys; say which with --kid")]
    AmbiguousKey(usize),
    #[error("kid '{0}' not found among the private keys of the JWKS")]
    KidNotFound(String),
    #[error("kid '{0}' is not usable: use 1 to 256 visible characters")]
    BadKid(String),
    #[error("the JWKS holds no key with a public part")]
    NoKeys,
    #[error("not a key file: {0}")]
    NotJwks(String),
    #[error("invalid key: {0}")]
    Invalid(String),
    #[error(
        "the PEM key is encrypted; decrypt it first, e.g. openssl pkey -in key.pem -out plain.pem"
    )]
    EncryptedPem,
    #[error("the PEM file holds {0}, not a private key")]
    NotPrivatePem(String),
    #[error("not a PEM private key this tool reads (PKCS#8, PKCS#1 RSA or SEC1 P-384): {0}")]
    Pem(String),
    #[error(
        "the assertion lifetime is {0} s; it must be 1 to 300 s (SMART allows at most 5 minutes)"
    )]
    Lifetime(u64),
    #[error("signing failed: {0}")]
    Sign(String),
    // The causes are part of the message, not `source`s, so that error chains printed
    // with `{:#}` do not repeat them.
    #[error("{}: {reason}", path.display())]
    File {
        path: PathBuf,
        reason: Box<KeyError>,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// jwt-simple reports key problems as bare `JWTError`s ("Invalid key pair"); say what the
/// usual cause is instead.
fn import_error(alg: Alg, e: &jwt_simple::Error) -> KeyError {
    let why = match e.downcast_ref::<JWTError>() {
        Some(JWTError::WeakKey) => {
            "the RSA key is shorter than 2048 bits, which SMART servers refuse".into()
        }
        Some(JWTError::UnsupportedRSAModulus) => "RSA keys over 4096 bits are not supported".into(),
        Some(JWTError::InvalidKeyPair) => match alg {
            Alg::Rs384 => "the members do not form a valid RSA private key (RS384 needs e = AQAB, \
                           i.e. 65537, and all of n, e, d, p, q, dp, dq, qi)"
                .into(),
            Alg::Es384 => "the members do not form a valid P-384 private key (x, y and d must be \
                           48-byte base64url values, and d must match x and y)"
                .into(),
        },
        _ => e.to_string(),
    };
    KeyError::Invalid(why)
}

/// Both behind `Arc`: an RSA key is half a kilobyte, and ES384KeyPair is not Clone, so
/// this keeps `SigningKey` small and cheap to clone without rebuilding keys.
#[derive(Clone)]
enum Pair {
    Rs(Arc<RS384KeyPair>),
    Es(Arc<ES384KeyPair>),
}

/// A private key with its `kid` and algorithm. Cheap to clone; `Send + Sync`.
///
/// The `kid` lives here, not in the jwt-simple key, and is put in the header at signing
/// time, so changing it never rebuilds the key.
#[derive(Clone)]
pub struct SigningKey {
    pair: Pair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.alg(), self.kid)
    }
}

/// Signs with a borrowed P-384 key under our `kid` (and `jku`), which jwt-simple would
/// otherwise only take by rebuilding its key pair.
struct EsSigner<'a> {
    pair: &'a P384KeyPair,
    kid: Option<String>,
    metadata: Option<KeyMetadata>,
}

impl ECDSAP384KeyPairLike for EsSigner<'_> {
    fn jwt_alg_name() -> &'static str {
        "ES384"
    }
    fn key_pair(&self) -> &P384KeyPair {
        self.pair
    }
    fn key_id(&self) -> &Option<String> {
        &self.kid
    }
    fn metadata(&self) -> &Option<KeyMetadata> {
        &self.metadata
    }
    fn attach_metadata(&mut self, metadata: KeyMetadata) -> Result<(), jwt_simple::Error> {
        self.metadata = Some(metadata);
        Ok(())
    }
}

/// `n` random bytes from the OS generator as hex: ids that must not be guessable (kids,
/// jtis, client ids, access tokens, export job ids).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 16 random bytes as 32 hex characters, the SMART style of `kid` and `jti`.
pub fn random_hex16() -> String {
    random_hex(16)
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > 256 || kid.chars().any(|c| c.is_control()) {
        return Err(KeyError::BadKid(kid.to_owned()));
    }
    Ok(())
}

/// The algorithm a JWK without `alg` is for, from `kty` (and `crv`).
fn alg_for_kty(jwk: &Value) -> Result<Alg, KeyError> {
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("(no crv)");
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => Ok(Alg::Rs384),
        Some("EC") if crv == "P-384" => Ok(Alg::Es384),
        Some("EC") => Err(KeyError::UnsupportedKeyType(format!(
            "an EC key on curve {crv}"
        ))),
        Some("OKP") => Err(KeyError::UnsupportedKeyType(format!("an OKP ({crv}) key"))),
        Some("oct") => Err(KeyError::UnsupportedKeyType("a symmetric (oct) key".into())),
        Some(other) => Err(KeyError::UnsupportedKeyType(format!(
            "a key of kty {other}"
        ))),
        None => Err(KeyError::NotJwks("the JWK has no \"kty\"".into())),
    }
}

impl SigningKey {
    /// A new key pair with a random `kid`. `rsa_bits` is ignored for ES384.
    pub fn generate(alg: Alg, rsa_bits: usize) -> Result<Self, KeyError> {
        Self::generate_with_kid(alg, rsa_bits, &random_hex16())
    }

    /// A new key pair under a `kid` of the caller's choosing.
    pub fn generate_with_kid(alg: Alg, rsa_bits: usize, kid: &str) -> Result<Self, KeyError> {
        check_kid(kid)?;
        let pair = match alg {
            Alg::Rs384 => {
                if !matches!(rsa_bits, 2048 | 3072 | 4096) {
                    return Err(KeyError::RsaBits(rsa_bits));
                }
                Pair::Rs(Arc::new(
                    RS384KeyPair::generate(rsa_bits).map_err(|e| import_error(alg, &e))?,
                ))
            }
            Alg::Es384 => Pair::Es(Arc::new(ES384KeyPair::generate())),
        };
        Ok(SigningKey {
            pair,
            kid: kid.to_owned(),
        })
    }

    /// One private JWK (it must carry `d`); the algorithm comes from `alg`, else from
    /// `kty`/`crv`. Without a `kid`, the key gets its RFC 7638 thumbprint.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let Some(obj) = jwk.as_object() else {
            return Err(KeyError::NotJwks("a JWK must be a JSON object".into()));
        };
        let alg = match obj.get("alg") {
            Some(Value::String(a)) => a.parse()?,
            Some(_) => return Err(KeyError::NotJwks("\"alg\" is not a string".into())),
            None => alg_for_kty(jwk)?,
        };
        match obj.get("kty").and_then(Value::as_str) {
            Some(kty) if kty == alg.kty() => {}
            Some(kty) => {
                return Err(KeyError::Invalid(format!(
                    "kty {kty} does not go with alg {alg}, which needs kty {}",
                    alg.kty()
                )));
            }
            None => return Err(KeyError::NotJwks("the JWK has no \"kty\"".into())),
        }
        if alg == Alg::Es384 {
            // Catches a P-256 key labelled ES384 with a message, not "Invalid key pair".
            alg_for_kty(jwk)?;
        }
        if !obj.contains_key("d") {
            return Err(KeyError::NoPrivateKey);
        }
        let kid = match obj.get("kid") {
            Some(Value::String(k)) => {
                check_kid(k)?;
                Some(k.clone())
            }
            Some(_) => return Err(KeyError::NotJwks("\"kid\" is not a string".into())),
            None => None,
        };
        // jwt-simple's strict import refuses `use`/`key_ops` combinations it does not
        // expect on a private key; keep only what describes the key itself.
        let mut clean = obj.clone();
        for m in ["ext", "use", "key_ops", "kid"] {
            clean.remove(m);
        }
        let text = serde_json::to_string(&clean).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pair = match alg {
            Alg::Rs384 => Pair::Rs(Arc::new(
                RS384KeyPair::from_jwk(&text).map_err(|e| import_error(alg, &e))?,
            )),
            Alg::Es384 => Pair::Es(Arc::new(
                ES384KeyPair::from_jwk(&text).map_err(|e| import_error(alg, &e))?,
            )),
        };
        let mut key = SigningKey {
            pair,
            kid: String::new(),
        };
        key.kid = kid.unwrap_or_else(|| key.thumbprint());
        Ok(key)
    }

    /// A JWKS or a single JWK: picks the private key (the one with `d`), by `kid` if
    /// given; without a `kid`, more than one private key is an error rather than a guess.
    pub fn from_jwks(jwks: &Value, kid: Option<&str>) -> Result<Self, KeyError> {
        let keys = key_list(jwks)?;
        let private: Vec<&Value> = keys.into_iter().filter(|k| k.get("d").is_some()).collect();
        let chosen: Vec<&Value> = match kid {
            Some(id) => private
                .iter()
                .copied()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(id))
                .collect(),
            None => private,
        };
        match (chosen.as_slice(), kid) {
            ([one], _) => Self::from_jwk(one),
            ([], Some(id)) => Err(KeyError::KidNotFound(id.to_owned())),
            ([], None) => Err(KeyError::NoPrivateKey),
            (many, _) => Err(KeyError::AmbiguousKey(many.len())),
        }
    }

    /// A PEM private key: PKCS#8 (RSA or P-384), PKCS#1 RSA, or SEC1 P-384 (with or
    /// without the `EC PARAMETERS` block `openssl ecparam -genkey` puts first). Text around
    /// the block is ignored. The `kid` is the RFC 7638 thumbprint of the public key, so
    /// converting the same key twice gives the same JWKS.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let blocks = pem_blocks(pem)?;
        let private: Vec<&PemBlock> = blocks
            .iter()
            .filter(|b| b.label.ends_with("PRIVATE KEY"))
            .collect();
        let pair = match private.as_slice() {
            [one] => pair_from_block(one)?,
            [] => {
                return Err(match blocks.first().map(|b| b.label.as_str()) {
                    None => KeyError::Pem("no -----BEGIN ...----- block".into()),
                    Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {
                        KeyError::NotPrivatePem("a public key".into())
                    }
                    Some("CERTIFICATE") => KeyError::NotPrivatePem("a certificate".into()),
                    Some("EC PARAMETERS") => KeyError::NotPrivatePem("only EC parameters".into()),
                    Some(other) => KeyError::NotPrivatePem(format!("a {other} block")),
                });
            }
            many => {
                return Err(KeyError::Pem(format!(
                    "{} private keys in one file; keep one key per file",
                    many.len()
                )));
            }
        };
        let mut key = SigningKey {
            pair,
            kid: String::new(),
        };
        key.kid = key.thumbprint();
        Ok(key)
    }

    /// Reads a JWKS/JWK JSON file or a PEM private key file, told apart by content; errors
    /// name the file. For JSON, `kid` chooses among the private keys; a PEM key has no
    /// `kid`, so there `kid` sets it (else the thumbprint is used).
    pub fn load(path: &Path, kid: Option<&str>) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let wrap = |e: KeyError| KeyError::File {
            path: path.to_path_buf(),
            reason: Box::new(e),
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(wrap(KeyError::NotJwks(
                "a binary file; keys are read as PEM or JSON (for a DER key: \
                 openssl pkey -inform DER -in FILE -out key.pem)"
                    .into(),
            )));
        };
        if text.contains("-----BEGIN") {
            let mut k = Self::from_pem(text).map_err(wrap)?;
            if let Some(id) = kid {
                k.set_kid(id).map_err(wrap)?;
            }
            return Ok(k);
        }
        let trimmed = text.trim_start_matches('\u{feff}').trim();
        if trimmed.is_empty() {
            return Err(wrap(KeyError::NotJwks("the file is empty".into())));
        }
        if !trimmed.starts_with('{') {
            return Err(wrap(KeyError::NotJwks(
                "neither a PEM private key nor a JWKS/JWK (JSON)".into(),
            )));
        }
        let v: Value = serde_json::from_str(trimmed)
            .map_err(|e| wrap(KeyError::NotJwks(format!("not valid JSON ({e})"))))?;
        Self::from_jwks(&v, kid).map_err(wrap)
    }

    /// Changes the `kid` (for `stratus keys convert --kid`).
    pub fn set_kid(&mut self, kid: &str) -> Result<(), KeyError> {
        check_kid(kid)?;
        kid.clone_into(&mut self.kid);
        Ok(())
    }

    /// RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        match &self.pair {
            Pair::Rs(k) => k.public_key().jwk_thumbprint(),
            Pair::Es(k) => k.jwk_thumbprint(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        match self.pair {
            Pair::Rs(_) => Alg::Rs384,
            Pair::Es(_) => Alg::Es384,
        }
    }

    fn decorate(&self, jwk: &str, op: &str) -> Value {
        // jwt-simple builds these strings with serde_json, so they always parse.
        let mut v: Value = serde_json::from_str(jwk).unwrap_or_else(|_| json!({}));
        if let Some(o) = v.as_object_mut() {
            o.remove("use");
            o.insert("alg".into(), json!(self.alg().as_str()));
            o.insert("kid".into(), json!(self.kid));
            o.insert("key_ops".into(), json!([op]));
            o.insert("ext".into(), json!(true));
        }
        v
    }

    /// The private JWK (`key_ops: ["sign"]`).
    pub fn private_jwk(&self) -> Value {
        let jwk = match &self.pair {
            Pair::Rs(k) => k.to_jwk(),
            Pair::Es(k) => k.to_jwk(),
        };
        self.decorate(&jwk, "sign")
    }

    /// The public JWK (`key_ops: ["verify"]`).
    pub fn public_jwk(&self) -> Value {
        let jwk = match &self.pair {
            Pair::Rs(k) => k.public_key().to_jwk(),
            Pair::Es(k) => k.public_key().to_jwk(),
        };
        self.decorate(&jwk, "verify")
    }

    /// `{"keys": [public, private]}`: what `stratus keys generate` writes.
    pub fn to_jwks(&self) -> Value {
        json!({"keys": [self.public_jwk(), self.private_jwk()]})
    }

    /// `{"keys": [public]}`: what a site registers with its EHR.
    pub fn public_jwks(&self) -> Value {
        json!({"keys": [self.public_jwk()]})
    }

    /// The private key as PKCS#8 PEM, for tools that want PEM rather than a JWK.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        match &self.pair {
            Pair::Rs(k) => k.to_pem(),
            Pair::Es(k) => k.to_pem(),
        }
        .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Signs claims under this key's `kid` (and `jku`, if given); used by
    /// [`crate::assertion`].
    pub(crate) fn sign<C: Serialize + serde::de::DeserializeOwned>(
        &self,
        claims: JWTClaims<C>,
        jku: Option<&str>,
    ) -> Result<String, KeyError> {
        let sign_err = |e: jwt_simple::Error| KeyError::Sign(e.to_string());
        let metadata = jku.map(|url| KeyMetadata::default().with_key_set_url(url));
        match &self.pair {
            Pair::Rs(k) => {
                let mut k = RS384KeyPair::clone(k).with_key_id(&self.kid);
                if let Some(m) = metadata {
                    k.attach_metadata(m).map_err(sign_err)?;
                }
                k.sign(claims).map_err(sign_err)
            }
            Pair::Es(k) => EsSigner {
                pair: k.key_pair(),
                kid: Some(self.kid.clone()),
                metadata,
            }
            .sign(claims)
            .map_err(sign_err),
        }
    }
}

/// The keys of a JWKS, or a single JWK as a list of one.
fn key_list(input: &Value) -> Result<Vec<&Value>, KeyError> {
    match input.get("keys") {
        Some(Value::Array(a)) => Ok(a.iter().collect()),
        Some(_) => Err(KeyError::NotJwks("\"keys\" is not a list".into())),
        None if input.get("kty").is_some() => Ok(vec![input]),
        None => Err(KeyError::NotJwks(
            "JSON, but neither a JWKS (no \"keys\" list) nor a JWK (no \"kty\")".into(),
        )),
    }
}

/// Private members of RFC 7518 keys: RSA (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`), EC (`d`)
/// and symmetric (`k`).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Strips private members from a JWKS or a single JWK, sets `key_ops` to `["verify"]`
/// (dropping `use`, which RFC 7517 says should not appear beside it), and drops keys that
/// become duplicates: a generated file holds both halves of one key, which become one
/// public key. Symmetric (`oct`) keys have no public part and are left out.
pub fn public_jwks(input: &Value) -> Result<Value, KeyError> {
    let mut out: Vec<Value> = Vec::new();
    for k in key_list(input)? {
        let Some(obj) = k.as_object() else {
            return Err(KeyError::NotJwks("a key is not a JSON object".into()));
        };
        match obj.get("kty").and_then(Value::as_str) {
            None => return Err(KeyError::NotJwks("a key has no \"kty\"".into())),
            Some("oct") => continue,
            Some(_) => {}
        }
        let mut o = obj.clone();
        for m in PRIVATE_MEMBERS {
            o.remove(m);
        }
        o.remove("use");
        o.insert("key_ops".into(), json!(["verify"]));
        let v = Value::Object(o);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(KeyError::NoKeys);
    }
    Ok(json!({"keys": out}))
}

/// One `-----BEGIN label-----` ... `-----END label-----` block, decoded.
struct PemBlock {
    label: String,
    der: Vec<u8>,
    /// Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` header).
    encrypted: bool,
}

/// Every PEM block in `text`. Lenient where real files vary (CRLF, indentation, text
/// between blocks, `Bag Attributes` from PKCS#12 exports), which the strict RFC 7468
/// decoders in the crypto crates refuse.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, KeyError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut encrypted = false;
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                encrypted |= name.eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED");
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(KeyError::Pem(format!("the {label} block has no END line")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| KeyError::Pem(format!("the {label} block is not valid base64")))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
            encrypted,
        });
    }
    Ok(blocks)
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// Curves people commonly make by mistake (P-256 is openssl's usual example), with their
/// OID's DER encoding, to name them in errors.
const OTHER_CURVES: [(&str, &str, &[u8]); 3] = [
    (
        "P-256",
        "1.2.840.10045.3.1.7",
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    ),
    (
        "P-521",
        "1.3.132.0.35",
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
    ),
    (
        "secp256k1",
        "1.3.132.0.10",
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
    ),
];

fn curve_name(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    OTHER_CURVES
        .iter()
        .find(|(_, o, _)| *o == dotted)
        .map_or(dotted, |(name, _, _)| (*name).to_owned())
}

fn pair_from_block(b: &PemBlock) -> Result<Pair, KeyError> {
    if b.encrypted {
        return Err(KeyError::EncryptedPem);
    }
    match b.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::EncryptedPem),
        "RSA PRIVATE KEY" => Ok(Pair::Rs(Arc::new(
            RS384KeyPair::from_der(&b.der).map_err(|e| import_error(Alg::Rs384, &e))?,
        ))),
        "EC PRIVATE KEY" => sec1_pair(&b.der),
        "PRIVATE KEY" => pkcs8_pair(&b.der),
        "OPENSSH PRIVATE KEY" => Err(KeyError::Pem(
            "an OpenSSH key; convert it to PKCS#8 PEM first".into(),
        )),
        other => Err(KeyError::Pem(format!("a {other} block"))),
    }
}

fn pkcs8_pair(der: &[u8]) -> Result<Pair, KeyError> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|e| KeyError::Pem(format!("the PRIVATE KEY block is not PKCS#8 ({e})")))?;
    let (alg, params) = info
        .algorithm
        .oids()
        .map_err(|e| KeyError::Pem(format!("the PRIVATE KEY block is not PKCS#8 ({e})")))?;
    if alg == OID_RSA {
        Ok(Pair::Rs(Arc::new(
            RS384KeyPair::from_der(der).map_err(|e| import_error(Alg::Rs384, &e))?,
        )))
    } else if alg == OID_EC {
        match params {
            Some(c) if c == OID_P384 => Ok(Pair::Es(Arc::new(
                ES384KeyPair::from_der(der).map_err(|e| import_error(Alg::Es384, &e))?,
            ))),
            Some(c) => Err(KeyError::UnsupportedKeyType(format!(
                "an EC key on curve {}",
                curve_name(&c)
            ))),
            None => Err(KeyError::UnsupportedKeyType(
                "an EC key without a named curve".into(),
            )),
        }
    } else if alg == OID_RSA_PSS {
        Err(KeyError::UnsupportedKeyType(
            "an RSA-PSS-only key (RS384 needs a plain rsaEncryption key)".into(),
        ))
    } else if alg == OID_ED25519 || alg == OID_ED448 {
        Err(KeyError::UnsupportedKeyType("an EdDSA key".into()))
    } else {
        Err(KeyError::UnsupportedKeyType(format!(
            "a key of algorithm {alg}"
        )))
    }
}

fn sec1_pair(der: &[u8]) -> Result<Pair, KeyError> {
    match p384::SecretKey::from_sec1_der(der) {
        Ok(sk) => {
            let d = jwt_simple::reexports::zeroize::Zeroizing::new(sk.to_bytes().to_vec());
            Ok(Pair::Es(Arc::new(
                ES384KeyPair::from_bytes(&d).map_err(|e| import_error(Alg::Es384, &e))?,
            )))
        }
        Err(e) => {
            // Only to name the curve in the message: a SEC1 key names its curve by OID.
            let other = OTHER_CURVES
                .iter()
                .find(|(_, _, bytes)| der.windows(bytes.len()).any(|w| w == *bytes));
            Err(match other {
                Some((name, _, _)) => {
                    KeyError::UnsupportedKeyType(format!("an EC key on curve {name}"))
                }
                None => KeyError::Pem(format!(
                    "the EC PRIVATE KEY block is not a SEC1 P-384 key ({e})"
                )),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<SigningKey>();
    }

    #[test]
    fn es384_jwks_round_trip() {
        let k = SigningKey::generate(Alg::Es384, 0).unwrap();
        assert_eq!(k.kid().len(), 32);
        let jwks = k.to_jwks();
        assert_eq!(jwks["keys"][0]["key_ops"], json!(["verify"]));
        assert_eq!(jwks["keys"][1]["key_ops"], json!(["sign"]));
        assert_eq!(jwks["keys"][1]["ext"], true);
        assert!(jwks["keys"][1].get("use").is_none());
        let back = SigningKey::from_jwks(&jwks, None).unwrap();
        assert_eq!(back.kid(), k.kid());
        assert_eq!(back.private_jwk(), k.private_jwk());
        let public = public_jwks(&jwks).unwrap();
        assert_eq!(public, k.public_jwks());
        assert!(matches!(
            SigningKey::from_jwks(&public, None),
            Err(KeyError::NoPrivateKey)
        ));
        // A single private JWK works too, and a clone signs under the same kid.
        let single = SigningKey::from_jwks(&k.private_jwk(), None).unwrap();
        assert_eq!(single.clone().kid(), k.kid());
    }

    #[test]
    fn jwk_errors_say_what_is_wrong() {
        let k = SigningKey::generate(Alg::Es384, 0).unwrap();
        let mut jwk = k.private_jwk();
        jwk["alg"] = json!("PS256");
        let e = SigningKey::from_jwk(&jwk).unwrap_err().to_string();
        assert_eq!(e, "unsupported alg PS256: use RS384 or ES384");
        jwk["alg"] = json!("RS384");
        let e = SigningKey::from_jwk(&jwk).unwrap_err().to_string();
        assert!(e.contains("kty EC does not go with alg RS384"), "{e}");
        let mut p256 = k.private_jwk();
        p256.as_object_mut().unwrap().remove("alg");
        p256["crv"] = json!("P-256");
        let e = SigningKey::from_jwk(&p256).unwrap_err().to_string();
        assert!(e.starts_with("an EC key on curve P-256: use"), "{e}");
        let mut bad_d = k.private_jwk();
        bad_d["d"] = k.public_jwk()["x"].clone();
        let e = SigningKey::from_jwk(&bad_d).unwrap_err().to_string();
        assert!(e.contains("d must match x and y"), "{e}");
        let e = SigningKey::from_jwks(&json!({"hello": 1}), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("not a key file"), "{e}");
        let e = public_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).unwrap_err();
        assert!(matches!(e, KeyError::NoKeys));
    }

    #[test]
    fn choosing_keys() {
        let a = SigningKey::generate(Alg::Es384, 0).unwrap();
        let b = SigningKey::generate(Alg::Es384, 0).unwrap();
        let both = json!({"keys": [a.private_jwk(), b.private_jwk(), a.public_jwk()]});
        assert!(matches!(
            SigningKey::from_jwks(&both, None),
            Err(KeyError::AmbiguousKey(2))
        ));
        assert_eq!(
            SigningKey::from_jwks(&both, Some(b.kid())).unwrap().kid(),
            b.kid()
        );
        assert!(matches!(
            SigningKey::from_jwks(&both, Some("x")),
            Err(KeyError::KidNotFound(_))
        ));
        let public = public_jwks(&both).unwrap();
        assert_eq!(public["keys"].as_array().unwrap().len(), 2);
        assert!("PS256".parse::<Alg>().is_err());
        assert_eq!("es384".parse::<Alg>().unwrap(), Alg::Es384);
        assert!(matches!(
            SigningKey::generate(Alg::Rs384, 1024),
            Err(KeyError::RsaBits(1024))
        ));
        assert!(SigningKey::generate_with_kid(Alg::Es384, 0, "").is_err());
        let mut c = a.clone();
        c.set_kid("mine").unwrap();
        assert_eq!(c.private_jwk()["kid"], "mine");
        assert_eq!(a.kid().len(), 32);
    }

    #[test]
    fn es_pem_forms() {
        let k = SigningKey::generate(Alg::Es384, 0).unwrap();
        let pkcs8 = k.to_pkcs8_pem().unwrap();
        let from8 = SigningKey::from_pem(&pkcs8).unwrap();
        assert_eq!(from8.alg(), Alg::Es384);
        assert_eq!(from8.kid(), k.thumbprint(), "kid is the thumbprint");
        assert_eq!(from8.public_jwk()["x"], k.public_jwk()["x"]);

        // SEC1, as `openssl ecparam -name secp384r1 -genkey` writes it: parameters first.
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k.private_jwk()["d"].as_str().unwrap())
            .unwrap();
        let sk = p384::SecretKey::from_slice(&d).unwrap();
        let sec1 = sk.to_sec1_pem(Default::default()).unwrap();
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n{}",
            sec1.replace('\n', "\r\n")
        );
        for text in [sec1.as_str(), with_params.as_str()] {
            let k2 = SigningKey::from_pem(text).unwrap();
            assert_eq!(k2.public_jwk(), from8.public_jwk());
        }
    }

    #[test]
    fn pem_refusals_name_the_problem() {
        let e = |t: &str| SigningKey::from_pem(t).unwrap_err().to_string();
        assert!(e("garbage").contains("no -----BEGIN"));
        let k = SigningKey::generate(Alg::Es384, 0).unwrap();
        let pkcs8 = k.to_pkcs8_pem().unwrap();
        let encrypted = pkcs8.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert!(e(&encrypted).contains("encrypted"));
        let public = pkcs8.replace("PRIVATE KEY", "PUBLIC KEY");
        assert_eq!(
            e(&public),
            "the PEM file holds a public key, not a private key"
        );
        let two = format!("{pkcs8}{pkcs8}");
        assert!(e(&two).contains("2 private keys"));
        // Throwaway P-256 and Ed25519 keys made with openssl 3 for these tests.
        let p256_sec1 = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIAs3ZTBwSR6zTycKNDnEmkWbZiVvXJTVJRNdATlp0GzhoAoGCCqGSM49
AwEHoUQDQgAES+PckExtN+eTMsdIykDzlMJhlkSzXrjHBSRLruXh20uWVfnQwAug
5eyOLxiX4qWAEjC7reJCIoIW4cgdZCcLPQ==
-----END EC PRIVATE KEY-----
";
        assert!(e(p256_sec1).contains("curve P-256"), "{}", e(p256_sec1));
        let p256_pkcs8 = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCzdlMHBJHrNPJwo0
OcSaRZtmJW9clNUlE10BOWnQbOGhRANCAARL49yQTG0355Myx0jKQPOUwmGWRLNe
uMcFJEuu5eHbS5ZV+dDAC6Dl7I4vGJfipYASMLut4kIighbhyB1kJws9
-----END PRIVATE KEY-----
";
        let ed25519 = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDUq9dC5pq/nlhvvzTlMgbfG1UCElvz6Ff4l3zuW0gfS
-----END PRIVATE KEY-----
";
        assert!(
            e(ed25519).starts_with("an EdDSA key: use"),
            "{}",
            e(ed25519)
        );
        assert!(e(p256_pkcs8).contains("curve P-256"), "{}", e(p256_pkcs8));
    }
}
