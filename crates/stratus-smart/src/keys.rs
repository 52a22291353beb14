//! Key pairs for SMART Backend Services, in the JWKS shapes EHR teams and the SMART tools
//! exchange: `{"keys": [public, private]}` under one `kid`, each JWK with `alg`, `kid`,
//! `key_ops` and `ext`, and no `use` (as in the SMART samples).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use jwt_simple::prelude::*;
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

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported alg {0}: use RS384 or ES384")]
    UnsupportedAlg(String),
    #[error("RSA keys must be 2048, 3072 or 4096 bits, not {0}")]
    RsaBits(usize),
    #[error("no private key (a JWK with \"d\") in the JWKS")]
    NoPrivateKey,
    #[error("the JWKS holds {0} private keys; say which with --kid")]
    AmbiguousKey(usize),
    #[error("kid '{0}' not found in the JWKS")]
    KidNotFound(String),
    #[error("not a key file: {0}")]
    NotJwks(String),
    #[error("invalid key: {0}")]
    Invalid(String),
    #[error("not a PEM private key this tool reads (PKCS#8, PKCS#1 RSA or SEC1 P-384): {0}")]
    Pem(String),
    #[error("the assertion lifetime is {0} s; SMART allows at most 300")]
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

fn invalid(e: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid(e.to_string())
}

enum Pair {
    Rs(RS384KeyPair),
    Es(ES384KeyPair),
}

/// A private key with its `kid` and algorithm.
pub struct SigningKey {
    pair: Pair,
    kid: String,
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        let pair = match &self.pair {
            Pair::Rs(k) => Pair::Rs(k.clone()),
            // ES384KeyPair is not Clone; its 48-byte scalar rebuilds it exactly.
            Pair::Es(k) => match ES384KeyPair::from_bytes(&k.to_bytes()) {
                Ok(c) => Pair::Es(c.with_key_id(&self.kid)),
                Err(_) => unreachable_clone(),
            },
        };
        SigningKey {
            pair,
            kid: self.kid.clone(),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_clone() -> Pair {
    panic!("a P-384 scalar taken from a valid key pair always rebuilds it")
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.alg(), self.kid)
    }
}

/// 16 random bytes as 32 hex characters, the SMART style of `kid` and `jti`.
pub fn random_hex16() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl SigningKey {
    /// A new key pair with a random `kid`.
    pub fn generate(alg: Alg, rsa_bits: usize) -> Result<Self, KeyError> {
        Self::generate_with_kid(alg, rsa_bits, &random_hex16())
    }

    pub fn generate_with_kid(alg: Alg, rsa_bits: usize, kid: &str) -> Result<Self, KeyError> {
        let pair = match alg {
            Alg::Rs384 => {
                if !matches!(rsa_bits, 2048 | 3072 | 4096) {
                    return Err(KeyError::RsaBits(rsa_bits));
                }
                Pair::Rs(
                    RS384KeyPair::generate(rsa_bits)
                        .map_err(invalid)?
                        .with_key_id(kid),
                )
            }
            Alg::Es384 => Pair::Es(ES384KeyPair::generate().with_key_id(kid)),
        };
        Ok(SigningKey {
            pair,
            kid: kid.to_owned(),
        })
    }

    /// One private JWK (it must carry `d`); the algorithm comes from `alg`, else `kty`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        if jwk.get("d").is_none() {
            return Err(KeyError::NoPrivateKey);
        }
        let alg = match jwk.get("alg").and_then(Value::as_str) {
            Some(a) => a.parse()?,
            None => match jwk.get("kty").and_then(Value::as_str) {
                Some("RSA") => Alg::Rs384,
                Some("EC") => Alg::Es384,
                other => {
                    return Err(KeyError::NotJwks(format!(
                        "kty {} is neither RSA nor EC",
                        other.unwrap_or("(missing)")
                    )));
                }
            },
        };
        // jwt-simple rejects members it does not expect to see together with a private
        // key's use; keep only what describes the key.
        let mut clean = jwk.clone();
        if let Some(o) = clean.as_object_mut() {
            o.remove("ext");
            o.remove("use");
            o.remove("key_ops");
        }
        let text = serde_json::to_string(&clean).map_err(invalid)?;
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let pair = match alg {
            Alg::Rs384 => Pair::Rs(RS384KeyPair::from_jwk(&text).map_err(invalid)?),
            Alg::Es384 => Pair::Es(ES384KeyPair::from_jwk(&text).map_err(invalid)?),
        };
        let mut key = SigningKey {
            pair,
            kid: String::new(),
        };
        let kid = kid.unwrap_or_else(|| key.thumbprint());
        key.set_kid(&kid);
        Ok(key)
    }

    /// A JWKS or a single JWK: picks the private key, by `kid` if given.
    pub fn from_jwks(jwks: &Value, kid: Option<&str>) -> Result<Self, KeyError> {
        let keys: Vec<&Value> = match jwks.get("keys") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(_) => return Err(KeyError::NotJwks("\"keys\" is not a list".into())),
            None if jwks.get("kty").is_some() => vec![jwks],
            None => return Err(KeyError::NotJwks("no \"keys\" list and no \"kty\"".into())),
        };
        let private: Vec<&Value> = keys.into_iter().filter(|k| k.get("d").is_some()).collect();
        let chosen: Vec<&Value> = match kid {
            Some(id) => private
                .iter()
                .copied()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(id))
                .collect(),
            None => private.clone(),
        };
        match (chosen.as_slice(), kid) {
            ([one], _) => Self::from_jwk(one),
            ([], Some(id)) => Err(KeyError::KidNotFound(id.to_owned())),
            ([], None) => Err(KeyError::NoPrivateKey),
            (many, _) => Err(KeyError::AmbiguousKey(many.len())),
        }
    }

    /// A PEM private key: PKCS#8 (RSA or P-384), PKCS#1 RSA, or SEC1 P-384. The `kid` is the
    /// RFC 7638 thumbprint, so converting the same key twice gives the same JWKS.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pair = if pem.contains("BEGIN EC PRIVATE KEY") {
            let sk =
                p384::SecretKey::from_sec1_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
            Pair::Es(
                ES384KeyPair::from_bytes(&sk.to_bytes())
                    .map_err(|e| KeyError::Pem(e.to_string()))?,
            )
        } else if let Ok(k) = RS384KeyPair::from_pem(pem) {
            Pair::Rs(k)
        } else {
            Pair::Es(ES384KeyPair::from_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?)
        };
        let mut key = SigningKey {
            pair,
            kid: String::new(),
        };
        let kid = key.thumbprint();
        key.set_kid(&kid);
        Ok(key)
    }

    /// Reads a JWKS/JWK JSON file or a PEM private key file; errors name the file.
    pub fn load(path: &Path, kid: Option<&str>) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let wrap = |e: KeyError| KeyError::File {
            path: path.to_path_buf(),
            reason: Box::new(e),
        };
        if text.contains("-----BEGIN") {
            let mut k = Self::from_pem(&text).map_err(wrap)?;
            if let Some(id) = kid {
                k.set_kid(id);
            }
            return Ok(k);
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            wrap(KeyError::NotJwks(format!(
                "neither a PEM private key nor JSON ({e})"
            )))
        })?;
        Self::from_jwks(&v, kid).map_err(wrap)
    }

    pub fn set_kid(&mut self, kid: &str) {
        self.kid = kid.to_owned();
        self.pair = match std::mem::replace(&mut self.pair, Pair::Es(ES384KeyPair::generate())) {
            Pair::Rs(k) => Pair::Rs(k.with_key_id(kid)),
            Pair::Es(k) => Pair::Es(k.with_key_id(kid)),
        };
    }

    fn thumbprint(&self) -> String {
        match &self.pair {
            Pair::Rs(k) => k.public_key().jwk_thumbprint(),
            Pair::Es(k) => k.public_key().jwk_thumbprint(),
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

    /// Signs claims; used by [`crate::assertion`].
    pub(crate) fn sign<C: Serialize + serde::de::DeserializeOwned>(
        &self,
        claims: JWTClaims<C>,
        jku: Option<&str>,
    ) -> Result<String, KeyError> {
        let sign_err = |e: jwt_simple::Error| KeyError::Sign(e.to_string());
        match (&self.pair, jku) {
            (Pair::Rs(k), None) => k.sign(claims).map_err(sign_err),
            (Pair::Es(k), None) => k.sign(claims).map_err(sign_err),
            (_, Some(url)) => {
                let mut copy = self.clone();
                let meta = KeyMetadata::default().with_key_set_url(url);
                match &mut copy.pair {
                    Pair::Rs(k) => {
                        k.attach_metadata(meta).map_err(sign_err)?;
                        k.sign(claims).map_err(sign_err)
                    }
                    Pair::Es(k) => {
                        k.attach_metadata(meta).map_err(sign_err)?;
                        k.sign(claims).map_err(sign_err)
                    }
                }
            }
        }
    }
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Strips private members from a JWKS or a single JWK, sets `key_ops` to `["verify"]`, and
/// drops keys that become duplicates (a generated file holds both halves of one key).
pub fn public_jwks(input: &Value) -> Result<Value, KeyError> {
    let keys: Vec<&Value> = match input.get("keys") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => return Err(KeyError::NotJwks("\"keys\" is not a list".into())),
        None if input.get("kty").is_some() => vec![input],
        None => return Err(KeyError::NotJwks("no \"keys\" list and no \"kty\"".into())),
    };
    let mut out: Vec<Value> = Vec::new();
    for k in keys {
        let Some(obj) = k.as_object() else {
            return Err(KeyError::NotJwks("a key is not a JSON object".into()));
        };
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
    Ok(json!({"keys": out}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_round_trip_both_algs() {
        for alg in [Alg::Es384, Alg::Rs384] {
            let k = SigningKey::generate(alg, 2048).unwrap();
            assert_eq!(k.kid().len(), 32);
            let jwks = k.to_jwks();
            let back = SigningKey::from_jwks(&jwks, None).unwrap();
            assert_eq!(back.kid(), k.kid());
            assert_eq!(back.public_jwk(), k.public_jwk());
            let public = public_jwks(&jwks).unwrap();
            assert_eq!(public, k.public_jwks());
            assert!(public["keys"][0].get("d").is_none());
            assert!(public["keys"][0].get("use").is_none());
            assert_eq!(public["keys"][0]["alg"], alg.as_str());
            assert!(matches!(
                SigningKey::from_jwks(&public, None),
                Err(KeyError::NoPrivateKey)
            ));
        }
    }

    #[test]
    fn pem_conversions() {
        let es = ES384KeyPair::generate();
        let pkcs8 = es.to_pem().unwrap();
        let k = SigningKey::from_pem(&pkcs8).unwrap();
        assert_eq!(k.alg(), Alg::Es384);
        assert_eq!(
            k.kid(),
            SigningKey::from_pem(&pkcs8).unwrap().kid(),
            "kid is deterministic"
        );
        let sk = p384::SecretKey::from_slice(&es.to_bytes()).unwrap();
        let sec1 = sk.to_sec1_pem(Default::default()).unwrap();
        let k2 = SigningKey::from_pem(&sec1).unwrap();
        assert_eq!(k2.public_jwk(), k.public_jwk());
        let rs = RS384KeyPair::generate(2048).unwrap();
        let k3 = SigningKey::from_pem(&rs.to_pem().unwrap()).unwrap();
        assert_eq!(k3.alg(), Alg::Rs384);
        assert!(matches!(
            SigningKey::from_pem("garbage"),
            Err(KeyError::Pem(_))
        ));
    }

    #[test]
    fn choosing_keys() {
        let a = SigningKey::generate(Alg::Es384, 0).unwrap();
        let b = SigningKey::generate(Alg::Es384, 0).unwrap();
        let both = json!({"keys": [a.private_jwk(), b.private_jwk()]});
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
        assert!("PS256".parse::<Alg>().is_err());
        assert!(SigningKey::generate(Alg::Rs384, 1024).is_err());
    }
}
